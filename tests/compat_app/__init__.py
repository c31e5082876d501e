"""A fixture app at three versions: each file is copied as `app/jobs.py` into a test's directory.

v1 is the code in production; v2 makes every kind of change, safe and breaking; v3 is v2 done the safe way
(the transitional versions of seeds/safely-deploy-job-payload-changes.txt)."""
