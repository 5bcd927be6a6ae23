// One streaming pass over a plane's movie: mean image, max projection, max/mean ratio, enhanced mean, correlation image.
process SUMMARY_IMAGES {
    tag "${meta.id}"
    label 'process_single'

    input:
    // In a subfolder: Nextflow's staging commands take a file name that starts with '-' for an option.
    tuple val(meta), path(movie, stageAs: 'movie/*')

    output:
    tuple val(meta), path('summary.h5'),    optional: true, emit: summary
    tuple val(meta), path('bad_input.txt'), optional: true, emit: bad_input
    path 'versions.yml',                                    emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${PlaneStep.onBadInput(task.ext.skip_bad_planes)}
    summary_images.py \\
        --movie=${PlaneStep.quote(movie)} \\
        --output summary.h5 \\
        --frame_rate ${meta.frame_rate} \\
        ${args} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    touch summary.h5
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
