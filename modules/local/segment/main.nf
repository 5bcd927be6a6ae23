// Cellpose 3 on the summary image chosen by --anatomical_only; never reads the movie, so it fits a GPU node.
process SEGMENT {
    tag "${meta.id}"
    label 'process_low'
    label 'process_gpu'

    input:
    tuple val(meta), path(summary)

    output:
    tuple val(meta), path('segmentation.h5'), optional: true, emit: segmentation
    tuple val(meta), path('bad_input.txt'),   optional: true, emit: bad_input
    path 'versions.yml',                                      emit: versions

    script:
    """
    ${PlaneStep.onBadInput(params.skip_bad_planes)}
    segment.py \\
        --summary ${summary} \\
        --output segmentation.h5 \\
        --pretrained_model=${PlaneStep.quote(ModelChecker.argument(params.pretrained_model.toString()))} \\
        --anatomical_only ${params.anatomical_only} \\
        --diameter ${params.diameter} \\
        --cellprob_threshold ${params.cellprob_threshold} \\
        --flow_threshold ${params.flow_threshold} \\
        --spatial_hp_cp ${params.spatial_hp_cp} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    touch segmentation.h5
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
