// One table for the session: every plane found, with frames, ROIs, cells and runtime, or why it is missing.
process SESSION_SUMMARY {
    label 'process_single'
    publishDir "${params.outdir}", mode: params.publish_dir_mode

    input:
    path plane_summaries, stageAs: 'planes/*/plane_summary.json'
    val plane_ids

    output:
    path 'summary.json', emit: json
    path 'summary.csv',  emit: csv

    script:
    """
    ophys-extraction session-summary --planes ${plane_ids.join(' ')} --output . planes/*/plane_summary.json
    """

    stub:
    """
    echo '{"planes": []}' > summary.json
    echo 'plane,status,frames,rois,cells,runtime_seconds' > summary.csv
    """
}
