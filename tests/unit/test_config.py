"""Settings from env and files, and URL masking."""
from __future__ import annotations

import pytest

from migrator import config
from migrator.errors import BadInput


@pytest.mark.parametrize("url,shown", [
    ("postgresql://app:s3cret@db.internal:5432/prod", "postgresql://app:***@db.internal:5432/prod"),
    ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_mask_url_hides_only_the_password(url, shown):
    assert config.mask_url(url) == shown


def test_env_overrides_file_and_file_overrides_defaults(tmp_path):
    (tmp_path / "migrator.toml").write_text('job_modules = ["app.jobs"]\nqueues = ["a", "b"]\n'
                                            'database_url = "postgresql://file/db"\nflag_cache_seconds = 0.5\n')
    s = config.load(tmp_path, {"DATABASE_URL": "postgresql://env/db"})
    assert (s.job_modules, s.queues, s.flag_cache_seconds) == (("app.jobs",), ("a", "b"), 0.5)
    assert s.database_url == "postgresql://env/db"
    assert config.load(tmp_path, {}).database_url == "postgresql://file/db"


def test_pyproject_tool_table_is_read(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.migrator]\nqueues = ["emails"]\n')
    assert config.load(tmp_path, {}).queues == ("emails",)


@pytest.mark.parametrize("text,message", [
    ("queues = 'default'", "must be a list of strings"),
    ("flag_cache_seconds = -1", "must be a number >= 0"),
    ("queues = [", "fix the TOML syntax"),
    ("pickle_payloads = 'app.jobs.send'", "pickle_payloads' must be true, false or a list of job names"),
    ("pickle_payloads = ['send']", "pickle_payloads' must be true, false or a list of job names"),
])
def test_bad_configuration_is_a_clear_error(tmp_path, text, message):
    (tmp_path / "migrator.toml").write_text(text)
    with pytest.raises(BadInput, match=message):
        config.load(tmp_path, {})


def test_unknown_key_is_named_not_ignored(tmp_path):
    (tmp_path / "migrator.toml").write_text("flag_cache_secs = 1\n")
    with pytest.raises(BadInput, match="unknown configuration key 'flag_cache_secs'; known keys: .*flag_cache_seconds"):
        config.load(tmp_path, {})


def test_extra_keys_reach_settings(tmp_path):
    (tmp_path / "migrator.toml").write_text("fallback = true\nenqueue_synchronous_commit = false\n")
    assert config.load(tmp_path, {}).extra == {"fallback": True, "enqueue_synchronous_commit": False}


@pytest.mark.parametrize("text,covers_send,covers_other", [
    ("", False, False),  # off by default
    ("pickle_payloads = false", False, False),
    ("pickle_payloads = ['app.jobs.send']", True, False),
    ("pickle_payloads = true", True, True),
])
def test_pickle_payloads_opt_in(tmp_path, text, covers_send, covers_other):
    (tmp_path / "migrator.toml").write_text(text)
    opted_in = config.load(tmp_path, {}).pickle_payloads
    assert (opted_in.covers("app.jobs.send"), opted_in.covers("app.jobs.other")) == (covers_send, covers_other)
    assert bool(opted_in) is covers_send
