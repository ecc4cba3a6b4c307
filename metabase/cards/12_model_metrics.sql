-- The segmentation model each run chose, its quality metrics, and how many candidates it beat.
SELECT
    m.run_id AS "Run",
    -- the names the report uses (insiders.models.segmentation.ALGORITHM_NAMES)
    CASE m.algorithm
        WHEN 'kmeans' THEN 'k-means'
        WHEN 'agglomerative' THEN 'agglomerative (Ward)'
        WHEN 'gmm' THEN 'Gaussian mixture'
        ELSE m.algorithm
    END AS "Model",
    m.k AS "Segments",
    m.silhouette AS "Silhouette",
    m.davies_bouldin AS "Davies-Bouldin",
    m.calinski_harabasz AS "Calinski-Harabasz",
    100 * m.min_segment_share AS "Smallest segment (%)",
    (SELECT COUNT(*) FROM model_candidates c WHERE c.run_id = m.run_id) AS "Candidates",
    (SELECT SUM(CASE WHEN c.useful THEN 1 ELSE 0 END)
     FROM model_candidates c WHERE c.run_id = m.run_id) AS "Useful candidates"
FROM model_candidates m
WHERE m.chosen
ORDER BY m.run_id DESC
