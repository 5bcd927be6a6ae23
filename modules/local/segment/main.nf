// Cellpose 3 on the summary image chosen by --anatomical_only; never reads the movie, so it fits a GPU node.
process SEGMENT {
    tag "${meta.id}"
    label 'process_low'
    label 'process_gpu'

    input:
    tuple val(meta), path(summary)

    output:
    tuple val(meta), path('segmentation.h5'), emit: segmentation
    path 'versions.yml',                       emit: versions

    script:
    """
    segment.py \\
        --summary ${summary} \\
        --output segmentation.h5 \\
        --pretrained_model '${params.pretrained_model}' \\
        --anatomical_only ${params.anatomical_only} \\
        --diameter ${params.diameter} \\
        --cellprob_threshold ${params.cellprob_threshold} \\
        --flow_threshold ${params.flow_threshold} \\
        --spatial_hp_cp ${params.spatial_hp_cp}
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    touch segmentation.h5
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
