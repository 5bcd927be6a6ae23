// With --suite2p_folder: the plane's extraction.h5 as a suite2p/plane0/ folder that suite2p's GUI opens (stat.npy,
// ops.npy, F.npy, Fneu.npy, spks.npy, iscell.npy, ...; docs/output.md). Its own step, after MERGE, like NWB: turning
// it on later (-resume) or changing its options reruns this step alone. main.nf puts `folder` into
// <outdir>/<plane>/suite2p/plane0 (lib/PlaneOutputs.groovy).
process SUITE2P_FOLDER {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(extraction, stageAs: 'input/extraction.h5')

    output:
    tuple val(meta), path('suite2p/plane0/*'), optional: true, emit: folder
    tuple val(meta), path('bad_input.txt'),    optional: true, emit: bad_input
    path 'versions.yml',                                       emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${PlaneStep.onBadInput(task.ext.skip_bad_planes)}
    export_suite2p.py ${extraction} \\
        --folder suite2p/plane0 \\
        ${args} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    mkdir -p suite2p/plane0
    cd suite2p/plane0
    touch stat.npy ops.npy F.npy Fneu.npy spks.npy iscell.npy db.npy settings.npy reg_outputs.npy detect_outputs.npy
    sha256sum iscell.npy > iscell.npy.sha256
    cd ../..
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
