// ROI statistics, cell and neuropil masks, traces in one streaming pass, neuropil correction, classifier.
process EXTRACT {
    tag "${meta.id}"
    label 'process_single'

    input:
    // In a subfolder: Nextflow's staging commands take a file name that starts with '-' for an option.
    tuple val(meta), path(movie, stageAs: 'movie/*'), path(segmentation)
    path classfile, stageAs: 'classifier/*'   // --classifier when it is a classfile, or [] (a name: in ext.args)

    output:
    tuple val(meta), path('traces.h5'),     optional: true, emit: traces
    tuple val(meta), path('bad_input.txt'), optional: true, emit: bad_input
    path 'versions.yml',                                    emit: versions

    script:
    def args = task.ext.args ?: ''
    def classifierArg = classfile ? "--classifier=${PlaneStep.quote(classfile)}" : ''
    """
    ${PlaneStep.onBadInput(task.ext.skip_bad_planes)}
    extract.py \\
        --movie=${PlaneStep.quote(movie)} \\
        --segmentation ${segmentation} \\
        --output traces.h5 \\
        ${classifierArg} ${args} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    touch traces.h5
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
