// suite2p's functional detection (--detection sparsery/sourcery, or added to SEGMENT's ROIs with cellpose+...):
// reads the movie, so it runs on CPU, like EXTRACT.
process FUNCTIONAL_DETECTION {
    tag "${meta.id}"
    label 'process_low'

    input:
    // In a subfolder: Nextflow's staging commands take a file name that starts with '-' for an option.
    // `cellpose`: SEGMENT's segmentation.h5 to add to, or [] for functional detection alone.
    tuple val(meta), path(movie, stageAs: 'movie/*'), path(cellpose, stageAs: 'cellpose/*')

    output:
    tuple val(meta), path('segmentation.h5'), optional: true, emit: segmentation
    tuple val(meta), path('bad_input.txt'),   optional: true, emit: bad_input
    path 'versions.yml',                                      emit: versions

    script:
    def args = task.ext.args ?: ''
    def cellposeArg = cellpose ? "--segmentation ${cellpose}" : ''
    """
    ${PlaneStep.onBadInput(task.ext.skip_bad_planes)}
    functional_detection.py \\
        --movie=${PlaneStep.quote(movie)} \\
        --frame_rate ${meta.frame_rate} \\
        --output segmentation.h5 \\
        ${cellposeArg} \\
        ${args} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    touch segmentation.h5
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
