-- yieldstream store, version 7: observations partitioned by year.

-- A backfill commit spans years: by month it wrote some 35 files per commit, and
-- compaction then ran after every commit. By year it writes a file per year; a
-- month's rows are still found through the files' observed_at statistics (a poll's
-- file holds one time). Files written before keep their month folders.
ALTER TABLE observations SET PARTITIONED BY (year(observed_at));
