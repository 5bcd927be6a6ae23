// Writes the plane's extraction.h5 (SPEC.md section 4) and detected_ROIs.png, validated before the rename.
process MERGE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(summary), path(segmentation), path(traces)

    output:
    tuple val(meta), path('extraction/extraction.h5'), optional: true, emit: extraction
    path 'extraction/detected_ROIs.png',               optional: true, emit: figure
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
        ${args} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    mkdir extraction
    touch extraction/extraction.h5 extraction/detected_ROIs.png
    cat > plane_summary.json <<'END_OF_PLANE_SUMMARY'
    ${groovy.json.JsonOutput.toJson([plane: meta.id, frames: 0, rois: 0, cells: 0, runtime_seconds: 0, warnings: []])}
    END_OF_PLANE_SUMMARY
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
