import java.nio.file.Files
import java.nio.file.Path
import java.security.MessageDigest

/**
 * A digest of the code the steps run: `src/ophys_extraction` and `bin/` of this checkout (which `make install`
 * installs in editable mode). main.nf puts it into every plane's meta, so it is part of each task's hash and
 * `-resume` after the code changed (a pull, an upgrade, an edit) reruns the steps instead of reusing results made by
 * other code. Nextflow itself hashes a task's script, inputs and container, not the Python package a step imports.
 */
class CodeDigest {

    static final List<String> CODE_FOLDERS = ['src/ophys_extraction', 'bin']

    /** The first 16 hex digits of SHA-256 over each code file's path (relative to `projectDir`) and bytes. */
    static String of(Path projectDir) {
        MessageDigest digest = MessageDigest.getInstance('SHA-256')
        List<Path> files = []
        CODE_FOLDERS.each { String folder ->
            Path root = projectDir.resolve(folder)
            if (!Files.isDirectory(root)) return
            Files.walk(root).withCloseable { stream ->
                stream.filter { Files.isRegularFile(it) && !it.toString().contains('__pycache__') }
                      .forEach { files << it }
            }
        }
        files.collect { projectDir.relativize(it).toString() }.sort().each { String name ->
            digest.update(name.getBytes('UTF-8'))
            digest.update((byte) 0)
            digest.update(Files.readAllBytes(projectDir.resolve(name)))
        }
        return digest.digest().encodeHex().toString().take(16)
    }
}
