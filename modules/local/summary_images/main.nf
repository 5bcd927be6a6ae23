// One streaming pass over a plane's movie: mean image, max projection, max/mean ratio, enhanced mean.
process SUMMARY_IMAGES {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(movie)

    output:
    tuple val(meta), path('summary.h5'), emit: summary
    path 'versions.yml',                  emit: versions

    script:
    def chunk = params.chunk_frames ? "--chunk_frames ${params.chunk_frames}" : ''
    """
    summary_images.py \\
        --movie ${movie} \\
        --output summary.h5 \\
        --frame_rate ${meta.frame_rate} \\
        --bin_duration ${params.bin_duration} \\
        ${params.denoise ? '--denoise' : ''} ${chunk}
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    touch summary.h5
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
