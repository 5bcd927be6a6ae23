#!/usr/bin/env nextflow
/*
 * ophys-extraction: registered two-photon movies -> cells (Cellpose 3) and traces (suite2p), one task per plane.
 * Output: docs/output.md. Parameters: nextflow_schema.json (nextflow run main.nf --help).
 */
nextflow.enable.dsl = 2

include { SUMMARY_IMAGES  } from './modules/local/summary_images'
include { SEGMENT         } from './modules/local/segment'
include { FUNCTIONAL_DETECTION } from './modules/local/functional_detection'
include { EXTRACT         } from './modules/local/extract'
include { MERGE           } from './modules/local/merge'
include { NWB             } from './modules/local/nwb'
include { SUITE2P_FOLDER  } from './modules/local/suite2p_folder'
include { SESSION_SUMMARY } from './modules/local/session_summary'

def schemaFile = file("${projectDir}/nextflow_schema.json")
// How a --pretrained_model value is read: the file SEGMENT reads too.
def modelNaming = ModelChecker.naming(file("${projectDir}/src/ophys_extraction/cellpose_models.json"))

if (params.help) {
    log.info ParamsChecker.help(schemaFile)
    exit 0
}

// Everything that can be checked before a task runs is checked here, and stops the run with one line each.
def paramProblems = ParamsChecker.problems(params, schemaFile)
if (!paramProblems) {
    // Stub runs load no model; in a container the built-in weights, and model files not on this machine, are the image's.
    def inContainer = ModelChecker.inContainer(workflow.session.config, workflow.containerEngine)
    def weightsDir = workflow.stubRun ? null : ModelChecker.weightsDir(workflow.session.config, workflow.containerEngine)
    def modelProblem = ModelChecker.problem(params.pretrained_model.toString(), weightsDir, inContainer, modelNaming)
    if (modelProblem) paramProblems << modelProblem
    if ((params.input == null) == (params.input_dir == null)) {
        paramProblems << "give the planes either as --input_dir <folder> or as --input <samplesheet.csv>, ${params.input == null ? 'neither was given' : 'not both'} (see --help)"
    }
    if (params.allow_failed_planes && !params.skip_bad_planes) {
        paramProblems << "--allow_failed_planes only applies with --skip_bad_planes (without it the first bad plane stops the run)"
    }
    def nwbOptionsProblem = nwbProblem()
    if (nwbOptionsProblem) paramProblems << nwbOptionsProblem
    if (params.suite2p_folder && params.publish_dir_mode == 'move') {
        paramProblems << "--publish_dir_mode move cannot be used with --suite2p_folder: its step reads extraction.h5 after MERGE publishes it (use copy or link)"
    }
    def classifierProblem = classifierProblem()
    if (classifierProblem) paramProblems << classifierProblem
}
if (paramProblems) {
    paramProblems.each { log.error "${it}" }
    exit 1
}

/** What is wrong with the NWB options, or null; the metadata file is checked by the NWB step's own reader. */
def nwbProblem() {
    if (params.nwb && params.publish_dir_mode == 'move') {
        return "--publish_dir_mode move cannot be used with --nwb: the NWB step reads extraction.h5 after MERGE publishes it (use copy or link)"
    }
    if (!params.nwb_metadata) return null
    if (!params.nwb) return "--nwb_metadata only applies with --nwb"
    def metadata = file(params.nwb_metadata.toString(), glob: false)
    def problem = StartCheck.problem(projectDir, ['--nwb_metadata', metadata.toString()]) { log.warn "--nwb_metadata ${metadata}: ${it}" }
    return problem ? "--nwb_metadata ${problem}" : null
}

/** The classfile --classifier names (a relative path from the launch folder), or null for a classifier's name. */
def classfile() {
    def value = params.classifier.toString()
    return value in ['anatomical', 'suite2p'] ? null : file(value, glob: false)
}

/** What is wrong with a classfile given as --classifier (EXTRACT's own reader, asked at start), or null. */
def classifierProblem() {
    def classfile = classfile()
    if (classfile == null) return null
    return StartCheck.problem(projectDir, ['--classifier', classfile.toString()]) { log.warn "--classifier ${classfile}: ${it}" }
}

/** [every plane id found, [meta, movie] of the planes to process, plane id -> why it failed before any task]. */
def discoverPlanes() {
    def warnings = []
    def problems = []
    boolean allowDuplicates = params.allow_duplicate_movies.toString() == 'true'
    // The frame-rate rule of the schema (src/ophys_extraction/options.py FRAME_RATE), as SUMMARY_IMAGES applies it.
    def rateRule = ParamsChecker.properties(file("${projectDir}/nextflow_schema.json")).frame_rate
    def planes = params.input != null
        ? PlaneFinder.fromSamplesheet(file(params.input.toString(), glob: false), problems, rateRule, allowDuplicates)
        : PlaneFinder.fromFolder(file(params.input_dir.toString(), glob: false), warnings, problems, allowDuplicates)
    warnings.each { log.warn "${it}" }
    if (problems) {
        problems.each { log.error "${it}" }
        exit 1
    }
    def usable = []
    def failed = [:]
    // In every plane's meta, so in every task's hash: -resume does not reuse results of other code (lib/CodeDigest).
    def code = CodeDigest.of(projectDir)
    planes.each { plane ->
        try {
            def rate = PlaneFinder.frameRate(plane, params.frame_rate, rateRule)
            log.info "plane ${plane.id}: ${plane.movie.toUriString()} at ${rate} Hz"
            usable << [[id: plane.id, frame_rate: rate, code: code], plane.movie]
        } catch (IllegalArgumentException err) {
            if (!params.skip_bad_planes) {
                log.error "plane ${plane.id}: ${err.message}"
                exit 1
            }
            log.warn "Skipping plane ${plane.id}: ${err.message}"
            failed[plane.id] = err.message
        }
    }
    return [planes*.id, usable, failed]
}

/** Plane folders in --outdir from an earlier run: removed with --remove_stale_planes, else named in the summary. */
def staleFolders(List planeIds) {
    def stale = PlaneFinder.staleFolders(file(params.outdir.toString(), glob: false), planeIds)
    if (!params.remove_stale_planes) {
        stale.each { log.warn "${params.outdir}/${it}: plane folder of an earlier run, not a plane of this run (named in summary.json; --remove_stale_planes removes such folders)" }
        return stale
    }
    stale.each { name ->
        file("${params.outdir}/${name}", glob: false).deleteDir()
        log.warn "Removed ${params.outdir}/${name}: a plane folder of an earlier run (--remove_stale_planes)"
    }
    return []
}

workflow {
    def (planeIds, usable, failedAtStart) = discoverPlanes()
    // A curated plane (ophys-extraction apply-curation) would get this run's results written over its curation.
    def curated = PlaneOutputs.curatedPlanes(file(params.outdir.toString(), glob: false), planeIds)
    if (curated) {
        curated.each { log.error "${params.outdir}/${it}: holds a curation (${PlaneOutputs.CURATION_RECORD}, from ophys-extraction apply-curation) that this run would write over: move the folder or use another --outdir, then apply the curated iscell.npy to the new results (ophys-extraction apply-curation <plane folder> --iscell FILE)" }
        exit 1
    }
    // An iscell.npy that suite2p's GUI saved into a plane's suite2p folder, not yet applied, would be lost the same way.
    def edited = PlaneOutputs.editedIscell(file(params.outdir.toString(), glob: false), planeIds)
    if (edited) {
        edited.each { log.error "${params.outdir}/${it}/${PlaneOutputs.SUITE2P_PLANE}/iscell.npy: changed since the pipeline wrote it (suite2p's GUI saves a curation there) and not applied, and this run would write over it: keep it by applying it to the results beside it (ophys-extraction apply-curation ${params.outdir}/${it}) or moving the folder, and run with another --outdir" }
        exit 1
    }
    def stale = staleFolders(planeIds)
    log.info "ophys-extraction: ${usable.size()} plane(s) from ${params.input ?: params.input_dir} -> ${params.outdir}"

    ch_movies = Channel.fromList(usable)

    SUMMARY_IMAGES(ch_movies)
    // --detection: Cellpose (SEGMENT), suite2p's functional detection, or the second's ROIs added to the first's.
    def detection = params.detection.toString()
    ch_segmentation = Channel.empty()
    ch_segment_bad_input = Channel.empty()
    ch_segment_versions = Channel.empty()
    if (detection.startsWith('cellpose')) {
        SEGMENT(SUMMARY_IMAGES.out.summary, ModelChecker.argument(params.pretrained_model.toString(), modelNaming),
                ModelChecker.stamp(params.pretrained_model.toString(), modelNaming))
        ch_segmentation = SEGMENT.out.segmentation
        ch_segment_bad_input = SEGMENT.out.bad_input
        ch_segment_versions = SEGMENT.out.versions
    }
    if (detection != 'cellpose') {
        FUNCTIONAL_DETECTION(detection.startsWith('cellpose+')
            ? ch_movies.join(SEGMENT.out.segmentation)
            : ch_movies.map { meta, movie -> [meta, movie, []] })
        ch_segmentation = FUNCTIONAL_DETECTION.out.segmentation
        ch_segment_bad_input = ch_segment_bad_input.mix(FUNCTIONAL_DETECTION.out.bad_input)
        ch_segment_versions = ch_segment_versions.mix(FUNCTIONAL_DETECTION.out.versions)
    }
    EXTRACT(ch_movies.join(ch_segmentation), classfile() ?: [])
    MERGE(
        SUMMARY_IMAGES.out.summary
            .join(ch_segmentation)
            .join(EXTRACT.out.traces)
    )

    ch_nwb_bad_input = Channel.empty()
    ch_nwb_versions = Channel.empty()
    ch_suite2p = Channel.empty()
    ch_suite2p_bad_input = Channel.empty()
    ch_suite2p_versions = Channel.empty()
    ch_results = MERGE.out.results
    if (params.nwb) {
        NWB(MERGE.out.extraction, params.nwb_metadata ? file(params.nwb_metadata.toString()) : [])
        ch_nwb_bad_input = NWB.out.bad_input
        ch_nwb_versions = NWB.out.versions
        ch_results = ch_results.mix(NWB.out.nwb)
    }
    if (params.suite2p_folder) {
        SUITE2P_FOLDER(MERGE.out.extraction)
        ch_suite2p = SUITE2P_FOLDER.out.folder
        ch_suite2p_bad_input = SUITE2P_FOLDER.out.bad_input
        ch_suite2p_versions = SUITE2P_FOLDER.out.versions
    }

    // Each plane's results go into <outdir>/<plane>/extraction (its suite2p folder into <outdir>/<plane>/suite2p/plane0)
    // here, not by publishDir: a file that cannot be put there fails its plane with the file system's reason, and all
    // of them are in place before the summary.
    ch_unpublished = ch_results
        .map { meta, files ->
            [meta.id, PlaneOutputs.publish(files instanceof List ? files : [files],
                                           file("${params.outdir}/${meta.id}/extraction", glob: false), params.publish_dir_mode.toString())]
        }
        .mix(ch_suite2p.map { meta, files ->
            [meta.id, PlaneOutputs.publish(files instanceof List ? files : [files],
                                           file("${params.outdir}/${meta.id}/suite2p/plane0", glob: false), params.publish_dir_mode.toString())]
        })
        .filter { id, problem -> problem != null }
    // What this run put into each plane's folder (relative to it): anything else there is an earlier run's.
    ch_published = ch_results
        .map { meta, files -> [meta.id, (files instanceof List ? files : [files]).collect { "extraction/${it.name}".toString() }] }
        .mix(ch_suite2p.map { meta, files -> [meta.id, (files instanceof List ? files : [files]).collect { "suite2p/plane0/${it.name}".toString() }] })

    // With --skip_bad_planes a step that rejects its plane's input records the reason instead of failing. Once every
    // plane is done, each failed plane's folder is set aside (it would hold an earlier run's results, or part of
    // this run's), so are the files of an earlier run in the folder of a plane that succeeded, and the summary says
    // where they went.
    ch_run = SUMMARY_IMAGES.out.bad_input
        .mix(ch_segment_bad_input, EXTRACT.out.bad_input, MERGE.out.bad_input, ch_nwb_bad_input, ch_suite2p_bad_input)
        .map { meta, badInput -> [meta.id, RunReport.reason(badInput), 0] }
        .mix(ch_unpublished.map { id, problem -> [id, problem, 1] })
        .mix(ch_published.map { id, names -> [id, names, 2] })
        .toList()
        .map { items ->
            // A step's reason wins over a publishing one, whatever order they arrived in.
            def failures = items.findAll { it[2] < 2 }.sort { -it[2] }
            def errors = failedAtStart + failures.collectEntries { [it[0], it[1]] }
            def published = items.findAll { it[2] == 2 && !errors.containsKey(it[0]) }
                .groupBy { it[0] }.collectEntries { id, rows -> [id, rows.collectMany { it[1] }] }
            def outdir = file(params.outdir.toString(), glob: false)
            def remove = params.remove_stale_planes.toString() == 'true'
            def setAside = PlaneOutputs.setAside(outdir, errors.keySet(), planeIds, remove) +
                           PlaneOutputs.setAsideLeftovers(outdir, published, planeIds, remove)
            RunReport.runJson(planeIds, errors, (stale + setAside.values()*.aside.findAll()).unique(),
                              setAside.collectEntries { id, done -> [id, done.note] })
        }
    SESSION_SUMMARY(MERGE.out.plane_summary.collect().ifEmpty([]), ch_run)

    SESSION_SUMMARY.out.json.subscribe { summaryJson ->
        def failed = RunReport.log(summaryJson, params.outdir.toString(), log, RunReport.quiet(workflow.commandLine))
        if (failed && !params.allow_failed_planes) {
            error "${failed} plane(s) failed (reasons above and in ${params.outdir}/summary.json); --allow_failed_planes exits 0 instead"
        }
    }

    SUMMARY_IMAGES.out.versions
        .mix(ch_segment_versions, EXTRACT.out.versions, MERGE.out.versions, ch_nwb_versions, ch_suite2p_versions)
        .map { it.text }
        .unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true, newLine: false)
}

workflow.onComplete {
    log.info(workflow.success ? "Done: results in ${params.outdir}" : "Failed: see the error above and .nextflow.log")
}
