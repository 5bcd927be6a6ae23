/**
 * What every per-plane process script shares: shell quoting of values that come from file names, and the handling
 * of bad input (exit code 2) that --skip_bad_planes turns into a recorded reason instead of a failed task.
 */
class PlaneStep {

    /** One shell word holding `value` exactly: plane ids and movie names may hold spaces, quotes, `$`, `;`, ... */
    static String quote(def value) {
        return "'" + value.toString().replace("'", "'\\''") + "'"
    }

    /**
     * Shell lines that go before a step's command, which is then written `command || on_step_failure`: the step's
     * `ERROR:` line also goes to bad_input.txt (ophys_extraction.errors.report), and with --skip_bad_planes an exit
     * code 2 that wrote it ends the task successfully with bad_input.txt as its only plane output, which carries the
     * reason into the session summary. Every other failure keeps its exit code (so retries still see it).
     * `skipBadPlanes`: the process's task.ext.skip_bad_planes (conf/modules.config sets it from --skip_bad_planes);
     * true or 'true' skips, anything else (unset included) does not.
     */
    static String onBadInput(def skipBadPlanes) {
        boolean skip = skipBadPlanes?.toString() == 'true'
        return """\
            export OPHYS_EXTRACTION_ERROR_FILE=bad_input.txt
            on_step_failure() { local status=\$?; [ "\$status" -eq 2 ] && [ -s bad_input.txt ] && ${skip ? 'true' : 'false'} || exit "\$status"; }
            """.stripIndent()
    }
}
