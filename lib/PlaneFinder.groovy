import groovy.json.JsonSlurper
import java.nio.file.Files
import java.nio.file.Path
import java.text.Normalizer

/**
 * The planes of an input folder and their frame rates (README, "Running it on your data").
 * Mirrors src/ophys_extraction/discovery.py so that -stub-run needs no Python; tests keep the two in agreement.
 */
class PlaneFinder {

    static final List<List<String>> ALLEN = [['decrosstalk', 'decrosstalk.h5'], ['motion_correction', 'registered.h5']]
    // What the pipeline itself writes in --outdir: a plane of that name would be overwritten by, or land inside, it.
    static final List<String> RESERVED = ['summary.json', 'summary.csv', 'pipeline_info']

    /**
     * [[id: String, movie: Path]] sorted by id: Allen-style session folders if any, else plain *.h5 files.
     * What is odd but not wrong goes to `warnings`, one line each.
     */
    static List<Map> find(Path inputDir, List<String> warnings = []) {
        if (!Files.exists(inputDir)) throw new IllegalArgumentException("${inputDir}: input directory does not exist")
        if (!Files.isDirectory(inputDir)) throw new IllegalArgumentException("${inputDir}: input path is not a directory")
        List<Path> entries = Files.list(inputDir).withCloseable { it.toList() }.sort(false) { it.fileName.toString() }
        List<Map> allen = []
        entries.findAll { Files.isDirectory(it) }.each { Path dir ->
            Path movie = allenMovie(dir)
            if (movie) allen << [id: dir.fileName.toString(), movie: movie]
        }
        List<Path> loose = entries.findAll { Files.isRegularFile(it) && it.fileName.toString().endsWith('.h5') }
        if (allen) {
            if (loose) warnings << "${inputDir}: ${loose*.fileName.join(', ')} not processed: with plane folders (<plane>/decrosstalk, <plane>/motion_correction) in the input, loose *.h5 files are not planes"
            return checkIds(allen)
        }
        List<Map> plain = loose.collect { [id: it.fileName.toString()[0..-4], movie: it] }
        if (!plain) throw new IllegalArgumentException("${inputDir}: no movies found (expected <plane>/decrosstalk/*decrosstalk.h5, <plane>/motion_correction/*registered.h5 or *.h5)")
        return checkIds(plain)
    }

    /**
     * Each plane id names the plane's output folder, so it must be able to: not empty, '.' or '..', no control
     * characters, none of the pipeline's own outputs, and not the same folder as another plane's where file names
     * ignore case or Unicode normalisation (macOS, Windows shares). Refused rather than renamed: downstream tools
     * find a plane's results at <outdir>/<plane id> (docs/output.md).
     */
    static List<Map> checkIds(List<Map> planes) {
        Map<String, String> seen = [:]
        planes.each { Map plane ->
            String id = plane.id
            String fix = "rename it, or link it under another name"
            if (id in ['', '.', '..']) throw new IllegalArgumentException("${plane.movie}: plane id '${id}' cannot name an output folder: ${fix}")
            if (id =~ /\p{Cntrl}/) throw new IllegalArgumentException("${plane.movie.parent}: plane id ${groovy.json.JsonOutput.toJson(id)} contains a control character (newline, tab, ...): ${fix}")
            String key = Normalizer.normalize(id, Normalizer.Form.NFC).toLowerCase(Locale.ROOT)
            if (key in RESERVED) throw new IllegalArgumentException("${plane.movie}: plane id '${id}' is the name of the pipeline's own output <outdir>/${RESERVED.find { it == key }}: ${fix}")
            if (seen.containsKey(key)) throw new IllegalArgumentException("${plane.movie}: plane ids '${seen[key]}' and '${id}' would share one output folder on file systems that ignore case or Unicode normalisation: ${fix}")
            seen[key] = id
        }
        return planes
    }

    /** Plane output folders (<name>/extraction) in `outdir` from an earlier run: not among this run's `planeIds`. */
    static List<String> staleFolders(Path outdir, List<String> planeIds) {
        if (!Files.isDirectory(outdir)) return []
        List<Path> entries = Files.list(outdir).withCloseable { it.toList() }
        return entries.findAll { Files.isDirectory(it.resolve('extraction')) && !(it.fileName.toString() in planeIds) }
                      .collect { it.fileName.toString() }.sort()
    }

    private static Path allenMovie(Path planeDir) {
        for (List<String> pattern : ALLEN) {
            Path sub = planeDir.resolve(pattern[0])
            if (!Files.isDirectory(sub)) continue
            List<Path> found = Files.list(sub).withCloseable { it.toList() }
                .findAll { Files.isRegularFile(it) && it.fileName.toString().endsWith(pattern[1]) }
                .sort(false) { it.fileName.toString() }
            if (found.size() > 1) throw new IllegalArgumentException("${sub}: more than one movie matches *${pattern[1]}: ${found*.fileName.join(', ')}")
            if (found) return found[0]
        }
        return null
    }

    /** The frame rate: the parameter if set, else processing.json then session.json in the movie's folder or the two above it. */
    static double frameRate(Path movie, def parameter) {
        if (parameter != null) return check(parameter, '--frame_rate')
        Path dir = movie.toAbsolutePath().parent
        List<Path> folders = [dir, dir?.parent, dir?.parent?.parent].findAll { it != null }
        for (String name : ['processing.json', 'session.json']) {
            for (Path folder : folders) {
                Path candidate = folder.resolve(name)
                if (!Files.isRegularFile(candidate)) continue
                def doc
                try { doc = new JsonSlurper().parse(candidate.toFile()) }
                catch (Exception err) { throw new IllegalArgumentException("${candidate}: cannot be read as JSON (${err.class.simpleName})") }
                def value = name == 'processing.json' ? fromProcessing(doc) : fromSession(doc)
                if (value != null) return check(value, candidate.toString())
            }
        }
        throw new IllegalArgumentException("${movie}: no frame rate: pass --frame_rate or put processing.json (movie_frame_rate_hz) or session.json beside the movie")
    }

    private static def fromProcessing(doc) {
        if (!(doc instanceof Map)) return null
        for (def holder : [doc, doc.processing_pipeline]) {
            if (!(holder instanceof Map)) continue
            for (def process : (holder.data_processes ?: [])) {
                def rate = process instanceof Map && process.parameters instanceof Map ? process.parameters.movie_frame_rate_hz : null
                if (rate != null) return rate
            }
        }
        return null
    }

    private static def fromSession(doc) {
        if (!(doc instanceof Map)) return null
        for (def stream : (doc.data_streams ?: [])) {
            def fovs = stream instanceof Map ? stream.ophys_fovs : null
            if (fovs && fovs[0] instanceof Map && fovs[0].frame_rate != null) return fovs[0].frame_rate
        }
        return null
    }

    private static double check(value, String source) {
        double rate
        try { rate = Double.parseDouble(value.toString()) }
        catch (NumberFormatException ignored) { throw new IllegalArgumentException("${source}: frame rate '${value}' is not a number") }
        if (Double.isNaN(rate) || Double.isInfinite(rate) || rate <= 0) throw new IllegalArgumentException("${source}: frame rate must be a positive number, got '${value}'")
        return rate
    }
}
