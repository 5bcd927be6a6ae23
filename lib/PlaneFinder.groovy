import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.charset.StandardCharsets
import java.nio.file.Files
import java.nio.file.Path
import java.text.Normalizer

/**
 * The planes to process (README, "Running it on your data"): from an input folder (--input_dir) or a samplesheet (--input), their
 * ids checked by one rule, and each plane's frame rate. The project's only plane finder. It works on Nextflow paths
 * (java.nio), so a folder or samplesheet on S3 (nf-amazon plugin) or HTTP is read like a local one.
 *
 * A plane is [id: String, movie: Path, frame_rate: String or null (the samplesheet's), where: String (what a
 * message about it names: the movie, or the samplesheet line)]. Problems are collected one line each, so that a
 * user sees all of them at once.
 */
class PlaneFinder {

    static final List<List<String>> ALLEN = [['decrosstalk', 'decrosstalk.h5'], ['motion_correction', 'registered.h5']]
    // What the pipeline itself writes in --outdir: a plane of that name would be overwritten by, or land inside, it.
    static final List<String> RESERVED = ['summary.json', 'summary.csv', 'pipeline_info']
    static final List<String> SHEET_REQUIRED = ['plane_id', 'movie']
    static final List<String> SHEET_COLUMNS = SHEET_REQUIRED + ['frame_rate']
    static final String FOLDER_FIX = 'rename it, or link it under another name'
    static final String SHEET_FIX = 'change it in the samplesheet'

    /**
     * The planes of an input folder, sorted by id: Allen-style session folders if any, else plain *.h5 files.
     * What is odd but not wrong goes to `warnings`, what stops the run to `problems` (one line each).
     */
    static List<Map> fromFolder(Path inputDir, List<String> warnings, List<String> problems,
                                boolean allowDuplicateMovies = false) {
        String name = inputDir.toUriString()
        if (!Files.exists(inputDir)) return fail(problems, "${name}: input directory does not exist")
        if (!Files.isDirectory(inputDir)) return fail(problems, "${name}: input path is not a directory")
        List<Path> entries = Files.list(inputDir).withCloseable { it.toList() }.sort(false) { it.fileName.toString() }
        List<Map> allen = []
        entries.findAll { Files.isDirectory(it) }.each { Path dir ->
            Path movie = allenMovie(dir, problems)
            if (movie) allen << plane(dir.fileName.toString(), movie, null, movie.toUriString())
        }
        List<Path> loose = entries.findAll { Files.isRegularFile(it) && it.fileName.toString().endsWith('.h5') }
        if (allen) {
            if (loose) warnings << "${name}: ${loose*.fileName.join(', ')} not processed: with plane folders (<plane>/decrosstalk, <plane>/motion_correction) in the input, loose *.h5 files are not planes"
            return checked(allen, FOLDER_FIX, problems, allowDuplicateMovies)
        }
        List<Map> plain = loose.collect { plane(it.fileName.toString()[0..-4], it, null, it.toUriString()) }
        if (!plain && !problems) return fail(problems, "${name}: no movies found (expected <plane>/decrosstalk/*decrosstalk.h5, <plane>/motion_correction/*registered.h5 or *.h5)")
        return checked(plain, FOLDER_FIX, problems, allowDuplicateMovies)
    }

    /**
     * The planes of a samplesheet (nf-core style CSV, RFC 4180 quoting), in its order: columns plane_id and movie,
     * optionally frame_rate. A movie is a local path (relative ones are taken from the samplesheet's folder) or a
     * URL (s3://..., https://...). Every problem goes to `problems`, one line each, naming the line.
     */
    static List<Map> fromSamplesheet(Path sheet, List<String> problems, Map rateRule, boolean allowDuplicateMovies = false) {
        String name = sheet.toUriString()
        if (!Files.exists(sheet)) return fail(problems, "${name}: samplesheet does not exist")
        if (!Files.isRegularFile(sheet)) return fail(problems, "${name}: samplesheet is not a file")
        List<Map> records
        try {
            records = csvRecords(new String(Files.readAllBytes(sheet), StandardCharsets.UTF_8))
        } catch (IllegalArgumentException err) {
            return fail(problems, "${name}: ${err.message}")
        }
        if (!records) return fail(problems, "${name}: samplesheet is empty (expected a header line: ${SHEET_COLUMNS.join(',')})")
        List<String> header = records[0].fields*.trim()
        int before = problems.size()
        (SHEET_REQUIRED - header).each { problems << "${name}: no column '${it}' (the header needs ${SHEET_REQUIRED.join(', ')}; optional: frame_rate)" }
        (header - SHEET_COLUMNS).each { problems << "${name}: unknown column '${it}' (columns: ${SHEET_COLUMNS.join(', ')})" }
        header.findAll { header.count(it) > 1 }.unique().each { problems << "${name}: column '${it}' appears more than once" }
        if (problems.size() > before) return []
        List<Map> planes = []
        records.drop(1).each { Map record ->
            List<String> fields = record.fields
            if (fields == ['']) return  // a blank line
            String where = "${name} line ${record.line}"
            if (fields.size() != header.size()) {
                problems << "${where}: ${fields.size()} field(s), the header has ${header.size()}"
                return
            }
            Map<String, String> row = [header, fields].transpose().collectEntries()
            Path movie = sheetMovie(sheet, row.movie, where, problems)
            String rate = row.frame_rate ?: null
            if (rate != null) {
                try { check(rate, where, rateRule) } catch (IllegalArgumentException err) { problems << err.message }
            }
            planes << plane(row.plane_id, movie, rate, where)  // its id is checked even if its movie is not there
        }
        if (!planes && problems.size() == before) return fail(problems, "${name}: no planes (only a header line)")
        problems.addAll(idProblems(planes, SHEET_FIX))
        if (!allowDuplicateMovies) problems.addAll(duplicateMovies(planes, SHEET_FIX))
        return problems.size() > before ? [] : planes
    }

    /**
     * The one rule for plane ids (`problems` gets a line for each plane that breaks it; `fix` says what the user
     * does about it). Each id names the plane's output folder, so it must be able to: not empty, '.' or '..', no
     * '/' or control characters, none of the pipeline's own outputs, and not the same folder as another plane's,
     * also where file names ignore case or Unicode normalisation (macOS, Windows shares). Refused rather than
     * renamed: downstream tools find a plane's results at <outdir>/<plane id> (docs/output.md).
     */
    static List<String> idProblems(List<Map> planes, String fix) {
        List<String> found = []
        Map<String, Map> seen = [:]
        planes.each { Map plane ->
            String id = plane.id
            if (id =~ /\p{Cntrl}/) {
                found << "${printable(plane.where)}: plane id ${JsonOutput.toJson(id)} contains a control character (newline, tab, ...): ${fix}"
                return
            }
            if (id in ['', '.', '..']) { found << "${plane.where}: plane id '${id}' cannot name an output folder: ${fix}"; return }
            if (id.contains('/')) { found << "${plane.where}: plane id '${id}' contains '/', so it cannot name one output folder: ${fix}"; return }
            String key = Normalizer.normalize(id, Normalizer.Form.NFC).toLowerCase(Locale.ROOT)
            if (key in RESERVED) { found << "${plane.where}: plane id '${id}' is the name of the pipeline's own output <outdir>/${key}: ${fix}"; return }
            Map other = seen[key]
            if (other?.id == id) found << "${plane.where}: plane id '${id}' is also the id of ${other.where}: ${fix}"
            else if (other) found << "${plane.where}: plane ids '${other.id}' and '${id}' would share one output folder on file systems that ignore case or Unicode normalisation: ${fix}"
            else seen[key] = plane
        }
        return found
    }

    /**
     * Planes whose movies are one file (the same path, or links to one file: compared by real path, URLs as
     * written) would give identical results, and where a row or folder was a copy-paste slip the movie meant is
     * never processed: one line for each plane whose movie an earlier plane has, naming both.
     */
    static List<String> duplicateMovies(List<Map> planes, String fix) {
        List<String> found = []
        Map<String, Map> seen = [:]
        planes.findAll { it.movie != null }.each { Map plane ->
            Path movie = plane.movie
            String key
            try { key = movie.toRealPath().toUri().toString() } catch (Exception ignored) { key = movie.toUri().toString() }
            Map other = seen[key]
            if (other == null) { seen[key] = plane; return }
            found << "${plane.where}: plane '${plane.id}' has the same movie as plane '${other.id}' (${other.where}): ${key.startsWith('file:') ? Path.of(URI.create(key)) : key}; ${fix}, or pass --allow_duplicate_movies if that is meant".toString()
        }
        return found
    }

    /** Plane output folders (<name>/extraction) in `outdir` from an earlier run: not among this run's `planeIds`. */
    static List<String> staleFolders(Path outdir, List<String> planeIds) {
        if (!Files.isDirectory(outdir)) return []
        List<Path> entries = Files.list(outdir).withCloseable { it.toList() }
        return entries.findAll { Files.isDirectory(it.resolve('extraction')) && !(it.fileName.toString() in planeIds) }
                      .collect { it.fileName.toString() }.sort()
    }

    /**
     * A plane's frame rate: its samplesheet frame_rate, else `parameter` (--frame_rate) if set, else processing.json
     * then session.json in the movie's folder or the two above it (the folders of the movie as named: for a link,
     * those of the link).
     */
    static double frameRate(Map plane, def parameter, Map rule) {
        if (plane.frame_rate != null) return check(plane.frame_rate, plane.where, rule)
        if (parameter != null) return check(parameter, '--frame_rate', rule)
        Path movie = plane.movie
        Path dir = movie.toAbsolutePath().parent
        List<Path> folders = [dir, dir?.parent, dir?.parent?.parent].findAll { it != null }
        for (String name : ['processing.json', 'session.json']) {
            for (Path folder : folders) {
                Path candidate = folder.resolve(name)
                if (!Files.isRegularFile(candidate)) continue
                def doc
                try { doc = new JsonSlurper().parseText(new String(Files.readAllBytes(candidate), StandardCharsets.UTF_8)) }
                catch (Exception err) { throw new IllegalArgumentException("${candidate.toUriString()}: cannot be read as JSON (${err.class.simpleName})") }
                def value = name == 'processing.json' ? fromProcessing(doc) : fromSession(doc)
                if (value != null) return check(value, candidate.toUriString(), rule)
            }
        }
        throw new IllegalArgumentException("${movie.toUriString()}: no frame rate: pass --frame_rate (or a samplesheet's frame_rate) or put processing.json (movie_frame_rate_hz) or session.json beside the movie")
    }

    private static Map plane(String id, Path movie, String frameRate, String where) {
        return [id: id, movie: movie, frame_rate: frameRate, where: where.toString()]
    }

    private static List<Map> fail(List<String> problems, String problem) {
        problems << problem
        return []
    }

    private static List<Map> checked(List<Map> planes, String fix, List<String> problems, boolean allowDuplicateMovies) {
        List<String> found = idProblems(planes, fix) + (allowDuplicateMovies ? [] : duplicateMovies(planes, fix))
        problems.addAll(found)
        return found ? [] : planes
    }

    private static String printable(String text) {
        return text.replaceAll(/\p{Cntrl}/) { String c -> String.format('\\u%04x', (int) c.charAt(0)) }
    }

    private static Path allenMovie(Path planeDir, List<String> problems) {
        for (List<String> pattern : ALLEN) {
            Path sub = planeDir.resolve(pattern[0])
            if (!Files.isDirectory(sub)) continue
            List<Path> found = Files.list(sub).withCloseable { it.toList() }
                .findAll { Files.isRegularFile(it) && it.fileName.toString().endsWith(pattern[1]) }
                .sort(false) { it.fileName.toString() }
            if (found.size() > 1) {
                problems << "${sub.toUriString()}: more than one movie matches *${pattern[1]}: ${found*.fileName.join(', ')}".toString()
                return null
            }
            if (found) return found[0]
        }
        return null
    }

    /** The movie of a samplesheet row: a URL as is, a path from the samplesheet's folder; null (and a problem) if
     * it is not an existing file. */
    private static Path sheetMovie(Path sheet, String value, String where, List<String> problems) {
        if (!value) { problems << "${where}: no movie".toString(); return null }
        Path movie
        try {
            movie = value =~ /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\// ? nextflow.file.FileHelper.asPath(value) : sheet.resolveSibling(value).normalize()
        } catch (Exception err) {
            problems << "${where}: movie ${value}: cannot be opened (${err.message ?: err.class.simpleName})".toString()
            return null
        }
        String unreachable = movie.toUri().scheme?.toLowerCase() in ['http', 'https', 'ftp'] ? remoteProblem(movie.toUriString()) : null
        if (unreachable) { problems << "${where}: movie ${movie.toUriString()}: unreachable (${unreachable})".toString(); return null }
        if (!Files.exists(movie)) { problems << "${where}: movie ${movie.toUriString()}: file not found".toString(); return null }
        if (!Files.isRegularFile(movie)) { problems << "${where}: movie ${movie.toUriString()}: is not a file".toString(); return null }
        return movie
    }

    /** Why a http(s) or ftp movie cannot be reached (no such host, refused, timed out, an HTTP error status other
     * than 404, which is "file not found"), or null: asked here, because Nextflow's own check of such a file
     * answers only "does not exist". */
    private static String remoteProblem(String url) {
        try {
            URLConnection connection = new URL(url).openConnection()
            connection.connectTimeout = 20000
            connection.readTimeout = 20000
            if (connection instanceof HttpURLConnection) {
                ((HttpURLConnection) connection).requestMethod = 'HEAD'
                int status = ((HttpURLConnection) connection).responseCode
                return status >= 400 && status != 404 ? "HTTP ${status} ${((HttpURLConnection) connection).responseMessage ?: ''}".trim() : null
            }
            connection.connect()
            return null
        } catch (IOException err) {
            return "${err.class.simpleName}${err.message ? ': ' + err.message : ''}"
        }
    }

    /**
     * CSV records (RFC 4180: fields in double quotes may hold commas, line breaks and "" for a quote), each
     * [line: its first line's number, fields: List<String>]. Unquoted fields lose surrounding blanks; quoted ones
     * are kept exactly. A byte-order mark and \r\n line ends are accepted.
     */
    private static List<Map> csvRecords(String text) {
        if (text.startsWith('\uFEFF')) text = text.substring(1)
        List<Map> records = []
        List<String> fields = []
        StringBuilder field = new StringBuilder()
        boolean quoted = false, wasQuoted = false
        int line = 1, recordLine = 1
        int i = 0
        Closure endField = {
            fields << (wasQuoted ? field.toString() : field.toString().trim())
            field.setLength(0)
            wasQuoted = false
        }
        while (i < text.length()) {
            char c = text.charAt(i)
            if (quoted) {
                if (c == '"' as char) {
                    if (i + 1 < text.length() && text.charAt(i + 1) == '"' as char) { field << '"'; i++ }
                    else quoted = false
                } else {
                    if (c == '\n' as char) line++
                    field << c
                }
            } else if (c == '"' as char && !field.toString().trim()) {
                quoted = wasQuoted = true
                field.setLength(0)
            } else if (c == ',' as char) {
                endField()
            } else if (c == '\n' as char || c == '\r' as char) {
                if (c == '\r' as char && i + 1 < text.length() && text.charAt(i + 1) == '\n' as char) i++
                endField()
                records << [line: recordLine, fields: fields]
                fields = []
                line++
                recordLine = line
            } else if (wasQuoted && Character.isWhitespace(c)) {
                // blanks after a closing quote are not part of the field
            } else {
                if (wasQuoted) throw new IllegalArgumentException("line ${line}: text after a closing quote (a quote inside a quoted field is written \"\")")
                field << c
            }
            i++
        }
        if (quoted) throw new IllegalArgumentException("line ${recordLine}: a quoted field is not closed")
        if (field.length() || fields || wasQuoted) {
            endField()
            records << [line: recordLine, fields: fields]
        }
        return records
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

    /** The rate, checked with `rule` (the schema's frame_rate entry, written from src/ophys_extraction/options.py:
     * the rule SUMMARY_IMAGES applies to its --frame_rate). */
    private static double check(value, String source, Map rule) {
        String problem = ParamsChecker.valueProblem(value, rule)
        if (problem) throw new IllegalArgumentException("${source}: frame rate '${value}' ${problem}")
        return Double.parseDouble(value.toString())
    }
}
