#!/usr/bin/env nextflow
/*
 * ophys-extraction: registered two-photon movies -> cells (Cellpose 3) and traces (suite2p), one task per plane.
 * Contract: SPEC.md. Parameters: nextflow_schema.json (nextflow run main.nf --help).
 */
nextflow.enable.dsl = 2

include { SUMMARY_IMAGES  } from './modules/local/summary_images'
include { SEGMENT         } from './modules/local/segment'
include { EXTRACT         } from './modules/local/extract'
include { MERGE           } from './modules/local/merge'
include { SESSION_SUMMARY } from './modules/local/session_summary'

def schemaFile = file("${projectDir}/nextflow_schema.json")

if (params.help) {
    log.info ParamsChecker.help(schemaFile)
    exit 0
}

// Everything that can be checked before a task runs is checked here, and stops the run with one line each.
def paramProblems = ParamsChecker.problems(params, schemaFile)
if (paramProblems) {
    paramProblems.each { log.error "${it}" }
    exit 1
}

def discoverPlanes() {
    def planes
    try {
        planes = PlaneFinder.find(file(params.input_dir))
    } catch (IllegalArgumentException err) {
        log.error "${err.message}"
        exit 1
    }
    def usable = []
    planes.each { plane ->
        try {
            def rate = PlaneFinder.frameRate(plane.movie, params.frame_rate)
            log.info "plane ${plane.id}: ${plane.movie} at ${rate} Hz"
            usable << [[id: plane.id, frame_rate: rate], plane.movie]
        } catch (IllegalArgumentException err) {
            if (!params.skip_bad_planes) {
                log.error "plane ${plane.id}: ${err.message}"
                exit 1
            }
            log.warn "Skipping plane ${plane.id}: ${err.message}"
        }
    }
    return [planes*.id, usable]
}

workflow {
    def (planeIds, usable) = discoverPlanes()
    log.info "ophys-extraction: ${usable.size()} plane(s) from ${params.input_dir} -> ${params.outdir}"

    ch_movies = Channel.fromList(usable)

    SUMMARY_IMAGES(ch_movies)
    SEGMENT(SUMMARY_IMAGES.out.summary)
    EXTRACT(ch_movies.join(SEGMENT.out.segmentation))
    MERGE(
        SUMMARY_IMAGES.out.summary
            .join(SEGMENT.out.segmentation)
            .join(EXTRACT.out.traces)
    )
    SESSION_SUMMARY(MERGE.out.plane_summary.collect().ifEmpty([]), planeIds)

    SUMMARY_IMAGES.out.versions
        .mix(SEGMENT.out.versions, EXTRACT.out.versions, MERGE.out.versions)
        .map { it.text }
        .unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true, newLine: false)
}

workflow.onComplete {
    log.info(workflow.success ? "Done: results in ${params.outdir}" : "Failed: see the error above and .nextflow.log")
}
