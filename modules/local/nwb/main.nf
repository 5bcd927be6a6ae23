// With --nwb: the plane's extraction.h5 as <plane>.nwb (pynwb). Its own step, after MERGE: it needs only
// extraction.h5, so turning --nwb on later (-resume) or changing its options reruns this step alone.
process NWB {
    tag "${meta.id}"
    label 'process_single'
    publishDir "${params.outdir}/${meta.id}", mode: params.publish_dir_mode, pattern: 'extraction/*'

    input:
    tuple val(meta), path(extraction, stageAs: 'input/extraction.h5')
    path metadata   // --nwb_metadata, or [] when not given

    output:
    tuple val(meta), path('extraction/*.nwb'), optional: true, emit: nwb
    tuple val(meta), path('bad_input.txt'),    optional: true, emit: bad_input
    path 'versions.yml',                                       emit: versions

    script:
    def pixelSize = params.nwb_pixel_size != null ? "--pixel_size ${params.nwb_pixel_size}" : ''
    def metadataArg = metadata ? "--metadata=${PlaneStep.quote(metadata)}" : ''
    """
    ${PlaneStep.onBadInput(params.skip_bad_planes)}
    nwb.py ${extraction} \\
        --outdir extraction \\
        --indicator=${PlaneStep.quote(params.nwb_indicator)} \\
        --location=${PlaneStep.quote(params.nwb_location)} \\
        ${pixelSize} ${metadataArg} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    mkdir extraction
    touch extraction/${PlaneStep.quote(meta.id + '.nwb')}
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
