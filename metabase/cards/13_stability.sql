-- How well the segmentation still agrees with its fit as months pass (adjusted Rand
-- index); below the threshold it is time to refit.
SELECT
    months_since_fit AS "Months since fit",
    ari AS "Agreement with fit (ARI)",
    threshold AS "Refit threshold"
FROM stability
WHERE run_id = (SELECT MAX(run_id) FROM stability)
ORDER BY months_since_fit
