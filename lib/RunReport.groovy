import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Path

/**
 * The run as SESSION_SUMMARY gets it (every plane found, why each failed plane failed, stale output folders), and
 * the end of the run as the console shows it (each failure's reason, each warning, one line of counts).
 */
class RunReport {

    /** JSON for `ophys-extraction session-summary --run`: plane ids reach it in a file, never on a command line.
     * `notes`: plane id -> lines for the plane's warnings (what was done with a failed plane's folder). */
    static String runJson(List<String> planeIds, Map<String, String> errors, List<String> staleFolders,
                          Map<String, String> notes = [:]) {
        return JsonOutput.toJson([planes: planeIds.collect { [plane: it, error: errors[it], warnings: notes[it] ? [notes[it]] : []] },
                                  stale_folders: staleFolders])
    }

    /** A step's bad_input.txt: its one `ERROR: <file>: <problem>` line, without the prefix. */
    static String reason(Path badInput) {
        String line = badInput.text.readLines().find { it.trim() } ?: 'bad input (no message)'
        return line.startsWith('ERROR: ') ? line.substring(7) : line
    }

    /** Logs each plane's warnings, each failed plane's reason and the counts; returns the number of failed planes.
     * `quiet` (nextflow -q, which shows errors only): the failures and their count go to stderr as well. */
    static int log(Path summaryJson, String outdir, def log, boolean quiet = false) {
        Map summary = (Map) new JsonSlurper().parseText(summaryJson.text)
        List<Map> planes = (List<Map>) (summary.planes ?: [])
        planes.each { Map row ->
            ((List) (row.warnings ?: [])).each { log.warn "plane ${row.plane}: ${it}" }
        }
        List<Map> failed = planes.findAll { it.status != 'ok' }
        List<String> lines = failed.collect { Map row -> "plane ${row.plane} failed: ${row.error}".toString() }
        lines << "ophys-extraction: ${planes.size() - failed.size()} of ${planes.size()} planes ok, ${failed.size()} failed (${outdir}/summary.json)".toString()
        lines.each { failed ? log.warn(it) : log.info(it) }
        if (failed && quiet) lines.each { System.err.println(it) }
        return failed.size()
    }

    /** Whether Nextflow was started with -q (-quiet): the command line as the user typed it. */
    static boolean quiet(String commandLine) {
        return commandLine?.split(/\s+/)?.takeWhile { it != 'run' }?.any { it in ['-q', '-quiet'] } ?: false
    }
}
