// One table for the session: every plane found, with frames, ROIs, cells and runtime, or why it failed
// (summary.json, summary.csv), summary.html, the overview with every plane's figure, and quality_control.json.
process SESSION_SUMMARY {
    label 'process_single'

    input:
    path plane_summaries, stageAs: 'planes/*/plane_summary.json'
    val run_json

    output:
    path 'summary.json', emit: json
    path 'summary.csv',  emit: csv
    path 'summary.html', emit: html
    path 'quality_control.json', optional: true, emit: quality_control   // AIND's QC record (with aind-data-schema)

    script:
    // Plane ids arrive inside a quoted here-document (RunReport.runJson, one line of JSON): no shell parses them.
    """
    cat > run.json <<'END_OF_RUN_JSON'
    ${run_json}
    END_OF_RUN_JSON
    ophys-extraction session-summary --run run.json --output . planes/*/plane_summary.json
    """

    stub:
    """
    echo '{"totals": {"planes": 0, "ok": 0, "failed": 0}, "planes": [], "stale_folders": []}' > summary.json
    echo 'plane,status,frames,rois,cells,rois_baseline_at_or_below_zero,runtime_seconds,error,warnings' > summary.csv
    echo '<!DOCTYPE html><html><body>stub</body></html>' > summary.html
    """
}
