// ROI statistics, cell and neuropil masks, traces in one streaming pass, neuropil correction, classifier.
process EXTRACT {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(movie), path(segmentation)

    output:
    tuple val(meta), path('traces.h5'), emit: traces
    path 'versions.yml',                emit: versions

    script:
    def chunk = params.chunk_frames ? "--chunk_frames ${params.chunk_frames}" : ''
    """
    extract.py \\
        --movie ${movie} \\
        --segmentation ${segmentation} \\
        --output traces.h5 \\
        --threads ${task.cpus} \\
        ${params.use_suite2p_neuropil ? '--use_suite2p_neuropil' : ''} ${chunk}
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    touch traces.h5
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
