-- Insiders in the latest run.
SELECT insiders AS "Insiders"
FROM runs
WHERE run_id = (SELECT MAX(run_id) FROM runs)
