// Writes the plane's extraction.h5 (SPEC.md section 4) and detected_ROIs.png, validated before the rename.
process MERGE {
    tag "${meta.id}"
    label 'process_single'
    publishDir "${params.outdir}/${meta.id}", mode: params.publish_dir_mode, pattern: 'extraction/*'

    input:
    tuple val(meta), path(summary), path(segmentation), path(traces)

    output:
    tuple val(meta), path('extraction/extraction.h5'), emit: extraction
    path 'extraction/detected_ROIs.png',               emit: figure
    path 'plane_summary.json',                         emit: plane_summary
    path 'versions.yml',                               emit: versions

    script:
    """
    merge.py \\
        --summary ${summary} \\
        --segmentation ${segmentation} \\
        --traces ${traces} \\
        --outdir extraction \\
        --plane_id '${meta.id}' \\
        --plane_summary plane_summary.json
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    mkdir extraction
    touch extraction/extraction.h5 extraction/detected_ROIs.png
    printf '{"plane": "%s", "frames": 0, "rois": 0, "cells": 0, "runtime_seconds": 0}\\n' '${meta.id}' > plane_summary.json
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
