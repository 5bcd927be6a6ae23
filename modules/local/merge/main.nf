// Writes the plane's extraction.h5 (docs/output.md), <plane>_extraction.h5 (external links to it),
// detected_ROIs.png and, with aind-data-schema installed, <plane>_extraction_data_process.json (AIND's processing
// record); the file is validated before the rename. main.nf puts `results` into <outdir>/<plane>/extraction
// (lib/PlaneOutputs.groovy), not publishDir: a file that cannot be put there fails the plane with the reason.
process MERGE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(summary), path(segmentation), path(traces)

    output:
    tuple val(meta), path('extraction/extraction.h5'), optional: true, emit: extraction
    tuple val(meta), path('extraction/*'),             optional: true, emit: results
    path 'plane_summary.json',                         optional: true, emit: plane_summary
    tuple val(meta), path('bad_input.txt'),            optional: true, emit: bad_input
    path 'versions.yml',                                               emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${PlaneStep.onBadInput(task.ext.skip_bad_planes)}
    merge.py \\
        --summary ${summary} \\
        --segmentation ${segmentation} \\
        --traces ${traces} \\
        --outdir extraction \\
        --plane_id=${PlaneStep.quote(meta.id)} \\
        --plane_summary plane_summary.json \\
        --aind_data_process \\
        ${args} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    mkdir extraction
    touch extraction/extraction.h5 extraction/detected_ROIs.png \\
        extraction/${PlaneStep.quote(meta.id + '_extraction.h5')}
    cat > plane_summary.json <<'END_OF_PLANE_SUMMARY'
    ${groovy.json.JsonOutput.toJson([plane: meta.id, frames: 0, rois: 0, cells: 0, rois_baseline_at_or_below_zero: 0, runtime_seconds: 0, warnings: []])}
    END_OF_PLANE_SUMMARY
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
