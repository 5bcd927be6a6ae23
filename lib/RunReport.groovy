import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Path

/**
 * The run as SESSION_SUMMARY gets it (every plane found, why each failed plane failed, stale output folders), and
 * the end of the run as the console shows it (each failure's reason, each warning, one line of counts).
 */
class RunReport {

    /** JSON for `ophys-extraction session-summary --run`: plane ids reach it in a file, never on a command line. */
    static String runJson(List<String> planeIds, Map<String, String> errors, List<String> staleFolders) {
        return JsonOutput.toJson([planes: planeIds.collect { [plane: it, error: errors[it]] },
                                  stale_folders: staleFolders])
    }

    /** A step's bad_input.txt: its one `ERROR: <file>: <problem>` line, without the prefix. */
    static String reason(Path badInput) {
        String line = badInput.text.readLines().find { it.trim() } ?: 'bad input (no message)'
        return line.startsWith('ERROR: ') ? line.substring(7) : line
    }

    /** Logs each plane's warnings, each failed plane's reason and the counts; returns the number of failed planes. */
    static int log(Path summaryJson, String outdir, def log) {
        Map summary = (Map) new JsonSlurper().parseText(summaryJson.text)
        List<Map> planes = (List<Map>) (summary.planes ?: [])
        planes.each { Map row ->
            ((List) (row.warnings ?: [])).each { log.warn "plane ${row.plane}: ${it}" }
        }
        List<Map> failed = planes.findAll { it.status != 'ok' }
        failed.each { Map row -> log.info "plane ${row.plane} failed: ${row.error}" }
        log.info "ophys-extraction: ${planes.size() - failed.size()} of ${planes.size()} planes ok, ${failed.size()} failed (${outdir}/summary.json)"
        return failed.size()
    }
}
