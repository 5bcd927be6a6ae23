import groovy.json.JsonSlurper
import java.nio.file.Path

/**
 * Checks params against nextflow_schema.json before any task runs, and prints --help from it.
 * Written here rather than with nf-schema because plugins cannot be downloaded offline.
 */
class ParamsChecker {

    static final String DECIMAL = /[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/
    static final String INTEGER = /[-+]?\d+/

    /** Parameter name -> its JSON-schema properties, over all groups of the schema. */
    static Map<String, Map> properties(Path schemaFile) {
        Map schema = (Map) new JsonSlurper().parse(schemaFile.toFile())
        Map<String, Map> props = [:]
        ((Map) schema.get('$defs')).each { group, Map spec -> props.putAll((Map) spec.properties) }
        return props
    }

    static List<String> requiredNames(Path schemaFile) {
        Map schema = (Map) new JsonSlurper().parse(schemaFile.toFile())
        return ((Map) schema.get('$defs')).values().collectMany { Map spec -> (List) (spec.required ?: []) }
    }

    /** Every problem with the given params, one message each; empty when they are fine. */
    static List<String> problems(Map params, Path schemaFile) {
        Map<String, Map> props = properties(schemaFile)
        List<String> found = []
        params.each { String name, value ->
            if (props.containsKey(name) || props.containsKey(snake(name))) return
            found << "unknown parameter --${name} (see --help)"
        }
        requiredNames(schemaFile).each { name ->
            if (params[name] == null || params[name] == '' || params[name] == true) found << "missing required parameter --${name}"
        }
        props.each { String name, Map spec ->
            def value = params[name]
            if (value == null) return
            String problem = valueProblem(value, spec)
            if (problem) found << "--${name} ${value}: ${problem}"
        }
        return found
    }

    private static String snake(String camel) {
        return camel.replaceAll(/([A-Z])/) { all, c -> '_' + c.toLowerCase() }
    }

    /** Why `value` does not fit the schema entry `spec`, or null. */
    static String valueProblem(value, Map spec) {
        List types = spec.type instanceof List ? (List) spec.type : [spec.type]
        def number = asNumber(value)
        if ('boolean' in types) {
            if (!(value instanceof Boolean) && !(value.toString() in ['true', 'false'])) return 'must be true or false'
            return null
        }
        // Out of range: the schema's errorMessage (the range and where it comes from: src/ophys_extraction/options.py).
        if ('integer' in types || 'number' in types) {
            if (number == null) return "must be a finite number"
            if ('integer' in types && !(value.toString() ==~ INTEGER)) return 'must be a whole number'
            boolean outside = (spec.enum && !(spec.enum.collect { it as double }.contains(number))) ||
                (spec.minimum != null && number < (spec.minimum as double)) ||
                (spec.exclusiveMinimum != null && number <= (spec.exclusiveMinimum as double)) ||
                (spec.maximum != null && number > (spec.maximum as double))
            return outside ? (spec.errorMessage ?: "must be in the range --help gives") : null
        }
        if ('string' in types) {
            if (value instanceof Boolean) return 'needs a value'
            if (spec.enum && !(value.toString() in spec.enum)) return spec.errorMessage ?: "must be one of ${spec.enum.join(', ')}"
            if (spec.minLength != null && value.toString().trim().length() < (spec.minLength as int)) return 'must be non-empty text'
            if (spec.pattern && !(value.toString() ==~ spec.pattern)) return "must match ${spec.pattern}"
        }
        return null
    }

    /** A finite number, or null. Text must be a plain decimal number: it reaches the steps' command lines as
     * written (conf/modules.config), so no blanks, no NaN or Infinity, no Java suffixes such as 'd'. */
    private static Double asNumber(value) {
        if (value instanceof Number) {
            double number = ((Number) value).doubleValue()
            return Double.isNaN(number) || Double.isInfinite(number) ? null : number
        }
        if (value instanceof Boolean || !(value.toString() ==~ DECIMAL)) return null
        return Double.parseDouble(value.toString())
    }

    static String help(Path schemaFile) {
        Map schema = (Map) new JsonSlurper().parse(schemaFile.toFile())
        StringBuilder out = new StringBuilder()
        out << "${schema.title}\n${schema.description}\n\nUsage: nextflow run main.nf --input_dir <dir> [--outdir results] [options]\n" +
               "       nextflow run main.nf --input <samplesheet.csv> [--outdir results] [options]\n"
        ((Map) schema.get('$defs')).each { group, Map spec ->
            out << "\n${spec.title}:\n"
            ((Map) spec.properties).each { String name, Map p ->
                String dflt = p.default != null ? " [default: ${p.default}]" : ''
                out << String.format("  --%-22s %s%s%n", name, p.description, dflt)
            }
        }
        return out.toString()
    }
}
