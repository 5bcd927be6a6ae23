import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.TimeUnit

/**
 * The start checks only the Python side can make (`ophys-extraction check-start`: the steps' own functions), asked
 * before any task with the project's environment (make install; Nextflow itself is installed there).
 */
class StartCheck {

    /** The problem `ophys-extraction check-start ARGS` names (its one ERROR line, without the prefix), or null.
     * Without the project's environment here (a head node with its own Nextflow) nothing is checked here: the step
     * that reads the input checks it with the same function, and `note` is told why. */
    static String problem(Path projectDir, List<String> args, Closure note) {
        Path command = projectDir.resolve('.venv/bin/ophys-extraction')
        if (!Files.isExecutable(command)) {
            note("not checked before the run (no ${command}: make install); the step that reads it checks it")
            return null
        }
        Process proc = ([command.toString(), 'check-start'] + args).execute()
        StringBuilder out = new StringBuilder(), err = new StringBuilder()
        proc.consumeProcessOutput(out, err)
        if (!proc.waitFor(120, TimeUnit.SECONDS)) {
            proc.destroy()
            return "ophys-extraction check-start ${args.join(' ')}: no answer in 120 s"
        }
        if (proc.exitValue() == 0) return null
        String line = err.toString().readLines().reverse().find { it.startsWith('ERROR: ') } ?: err.toString().trim()
        return line.startsWith('ERROR: ') ? line.substring(7) : "ophys-extraction check-start failed: ${line}"
    }
}
