// Cellpose 3 on the summary image chosen by --anatomical_only (--detection cellpose or cellpose+...); never
// reads the movie, so it fits a GPU node.
process SEGMENT {
    tag "${meta.id}"
    label 'process_low'
    label 'process_gpu'

    input:
    tuple val(meta), path(summary)
    // A name (cyto3) or a model file's absolute path, not a staged file: a model's size model (<model>_size.npy)
    // is found beside it.
    val model
    // The model file's and its size model's size and modification time (ModelChecker.stamp): unused by the script,
    // part of the task's hash, so -resume reruns the step when the model changes in place.
    val model_stamp

    output:
    tuple val(meta), path('segmentation.h5'), optional: true, emit: segmentation
    tuple val(meta), path('bad_input.txt'),   optional: true, emit: bad_input
    path 'versions.yml',                                      emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${PlaneStep.onBadInput(task.ext.skip_bad_planes)}
    segment.py \\
        --summary ${summary} \\
        --output segmentation.h5 \\
        --pretrained_model=${PlaneStep.quote(model)} \\
        ${args} || on_step_failure
    ophys-extraction versions --process ${task.process} > versions.yml
    """

    stub:
    """
    touch segmentation.h5
    printf '"%s":\\n    ophys_extraction: stub\\n' "${task.process}" > versions.yml
    """
}
