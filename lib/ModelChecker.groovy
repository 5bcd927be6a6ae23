import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths

/**
 * --pretrained_model, checked before any task (the SEGMENT step checks it again, fully, with torch): a model file
 * must exist and be a PyTorch file; a built-in Cellpose name needs its weights in Cellpose's model folder when the
 * tasks run in this machine's environment (in a container the weights are in the image). Names and paths, and the
 * built-ins' weight files, are told apart by src/ophys_extraction/cellpose_models.json, which SEGMENT reads too.
 */
class ModelChecker {

    /** src/ophys_extraction/cellpose_models.json, read once per run by main.nf. */
    static Map naming(Path file) {
        return (Map) new groovy.json.JsonSlurper().parse(file.toFile())
    }
    // Executors whose tasks always run in a container (this pipeline's images carry the cyto3 weights).
    static final List<String> CONTAINER_EXECUTORS = ['awsbatch', 'google-batch', 'azurebatch', 'k8s']

    /** The value a task gets: a model file as an absolute path (tasks run in their own work folders), a name as is. */
    static String argument(String spec, Map naming) {
        return isFile(spec, naming) ? path(spec).toAbsolutePath().normalize().toString() : spec
    }

    /**
     * The problem with `spec`, or null. `weightsDir`: Cellpose's model folder where the tasks will look for a
     * built-in model's weights, or null when they run in a container (nothing to check here). `inContainer`: a
     * model file that is not on this machine may be the image's (e.g. /opt/cellpose/models/<file>); SEGMENT checks
     * it there, with the same one-line error.
     */
    static String problem(String spec, Path weightsDir, boolean inContainer, Map naming) {
        spec = spec?.trim()
        if (!spec) return "--pretrained_model is empty: pass a Cellpose 3 model name (e.g. cyto3) or a model file"
        if (isFile(spec, naming)) return inContainer && !Files.exists(path(spec)) ? null : fileProblem(spec, path(spec))
        if (weightsDir == null) return null
        String weights = ((Map) naming.weights_file).get(spec) ?: spec
        if (Files.isRegularFile(weightsDir.resolve(weights))) return null
        return "--pretrained_model ${spec}: no such file, and no weights of a built-in Cellpose model '${spec}' in " +
               "${weightsDir} (weights are never downloaded at run time): pass a model file, put the weights there " +
               "(or set CELLPOSE_LOCAL_MODELS_PATH), or use a container profile (docker, apptainer), whose image has cyto3"
    }

    /** Path-like values (naming.path_pattern: a separator, a dot, a leading ~) and existing files are model files;
     * the rest are names. */
    static boolean isFile(String spec, Map naming) {
        return (spec =~ (String) naming.path_pattern).find() || Files.exists(path(spec))
    }

    /**
     * What -resume compares for a model file: size and modification time of the file and of the size model beside it
     * (`<file>_size.npy`, what --diameter 0 starts from), as Nextflow's standard cache compares a staged file. SEGMENT
     * takes the model as a value, not a staged file, so that its size model is found beside it; without this a model
     * retrained in place would be skipped by -resume. Empty for a built-in name and for a file that is not on this
     * machine (the image's, fixed with the image).
     */
    static String stamp(String spec, Map naming) {
        if (!isFile(spec, naming)) return ''
        Path model = path(spec)
        return [model, model.resolveSibling(model.fileName.toString() + '_size.npy')]
            .findAll { Files.isRegularFile(it) }
            .collect { "${it.fileName} ${Files.size(it)} ${Files.getLastModifiedTime(it).toMillis()}" }
            .join('; ')
    }

    private static Path path(String spec) {
        String home = System.getProperty('user.home')
        return Paths.get(spec == '~' ? home : spec.startsWith('~/') ? home + spec.substring(1) : spec)
    }

    private static String fileProblem(String spec, Path file) {
        if (!Files.exists(file)) return "--pretrained_model ${spec}: model file not found"
        if (!Files.isRegularFile(file)) return "--pretrained_model ${spec}: is not a file; a Cellpose model is one file"
        if (!Files.isReadable(file)) return "--pretrained_model ${spec}: model file is not readable"
        byte[] head = new byte[4]
        int n = Files.newInputStream(file).withCloseable { it.read(head) }
        // torch.save writes a zip archive ("PK\3\4"); files from torch < 1.6 are a pickle (protocol byte 0x80).
        boolean zip = n == 4 && head[0] == 0x50 && head[1] == 0x4b && head[2] == 0x03 && head[3] == 0x04
        boolean pickle = n >= 1 && (head[0] & 0xff) == 0x80
        if (!zip && !pickle) return "--pretrained_model ${spec}: is not a PyTorch model file (neither the zip archive " +
                                    "torch.save writes nor a pickle), so it cannot be a Cellpose model"
        return null
    }

    /** Whether the tasks run in a container: a container engine is enabled, or the executor always uses one. */
    static boolean inContainer(Map config, String containerEngine) {
        String executor = (config.process instanceof Map ? config.process.executor : null) ?: 'local'
        return containerEngine || executor in CONTAINER_EXECUTORS
    }

    /** Cellpose's model folder as the tasks will see it: CELLPOSE_LOCAL_MODELS_PATH (Nextflow's env scope, else this
     * process's environment), else ~/.cellpose/models; null when tasks run in a container. */
    static Path weightsDir(Map config, String containerEngine) {
        if (inContainer(config, containerEngine)) return null
        String dir = (config.env instanceof Map ? config.env.CELLPOSE_LOCAL_MODELS_PATH : null) ?:
                     System.getenv('CELLPOSE_LOCAL_MODELS_PATH')
        return dir ? Paths.get(dir) : Paths.get(System.getProperty('user.home'), '.cellpose', 'models')
    }
}
