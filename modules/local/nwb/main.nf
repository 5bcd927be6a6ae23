// With --nwb: the plane's extraction.h5 as <plane>.nwb (pynwb). Its own step, after MERGE: it needs only
// extraction.h5, so turning --nwb on later (-resume) or changing its options reruns this step alone. main.nf puts
// `nwb` into <outdir>/<plane>/extraction (lib/PlaneOutputs.groovy).
process NWB {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(extraction, stageAs: 'input/extraction.h5')
    path metadata   // --nwb_metadata, or [] when not given

    output:
    tuple val(meta), path('extraction/*.nwb'), optional: true, emit: nwb
    tuple val(meta), path('bad_input.txt'),    optional: true, emit: bad_input
    path 'versions.yml',                                       emit: versions

    script:
    def args = task.ext.args ?: ''
    def metadataArg = metadata ? "--metadata=${PlaneStep.quote(metadata)}" : ''
    """
    ${PlaneStep.onBadInput(task.ext.skip_bad_planes)}
    nwb.py ${extraction} \\
        --outdir extraction \\
        ${metadataArg} ${args} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    mkdir extraction
    touch extraction/${PlaneStep.quote(meta.id + '.nwb')}
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
