import pytest

from kiosk.config import ConfigError, KioskConfig, load_config


def write(tmp_path, text):
    path = tmp_path / "kiosk.toml"
    path.write_text(text, "utf-8")
    return path


@pytest.mark.req("A11-10")
def test_shipped_defaults_load_and_equal_the_safe_defaults():
    config = load_config()
    assert config == KioskConfig()
    assert config.session.idle_timeout_s == 300 and config.auth.lockout_threshold == 5
    assert config.password.min_length == 12 and config.password.max_age_days == 0


@pytest.mark.req("A11d-11")
@pytest.mark.parametrize(
    "text, expected",
    [
        ("[session]\nidle_timeout_s = 0\n", r"'session.idle_timeout_s' = 0 is out of range; allowed 30 .. 3600"),
        ("[session]\nidle_timeout_s = 1200\n", r"above the site maximum; allowed 30 .. 900"),
        ("[session]\nidle_timeout = 60\n", r"unknown key 'session.idle_timeout'"),
        ("[sesion]\n", r"unknown section \[sesion\]"),
        ('[auth]\nlockout_threshold = "5"\n', r"'auth.lockout_threshold' must be an integer"),
        ("[auth]\nlockout_threshold = 101\n", r"allowed 3 .. 100"),
        ("[auth]\ntotp_at_login = 1\n", r"must be true or false"),
        ('[site]\ntimezone = "Mars/Olympus"\n', r"'site.timezone'.*IANA"),
        ("[session\n", r"not valid TOML"),
        ("[password]\nmax_length = 32\n", r"allowed 64 .. 1024"),
        ("[checkpoint]\nidle_every_s = 86400\n", r"'checkpoint.idle_every_s' = 86400 is out of range; allowed 600 .. 43200"),
        ('[sync]\ncentral_url = "mysql://kiosk@central/kiosk"\n',
         r"'sync.central_url': a central store is PostgreSQL or SQLite, not mysql://"),
        ('[sync]\ncentral_url = "central.example.org"\n', r"'sync.central_url': not a database URL"),
    ],
)
def test_bad_config_names_file_key_and_range(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_a_central_url_is_checked_at_start_and_never_echoed(tmp_path):
    """A config file is read at start-up: a URL no central store can have stops it there, not at the first
    sync; the message names the key and the scheme, never the URL (it may hold a password)."""
    from kiosk.domain.central_url import central_url_problem

    for url in ("postgresql+psycopg://kiosk:pw@central/kiosk", "postgresql://kiosk@central/kiosk",
                "sqlite:///central.db", "sqlite:////var/lib/kiosk/central.db"):
        assert central_url_problem(url) is None, url
        assert load_config(write(tmp_path, f'[sync]\ncentral_url = "{url}"\n')).sync.central_url == url
    assert "sqlite:///PATH" in central_url_problem("sqlite://")  # a database in memory: gone at exit
    assert "sqlite:///PATH" in central_url_problem("sqlite:///")
    assert "names no server" in central_url_problem("postgresql://")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, '[sync]\ncentral_url = "postgresql+psycopg2://kiosk:s3cret@central/kiosk"\n'))
    assert "postgresql+psycopg://, not postgresql+psycopg2://" in str(err.value) and "s3cret" not in str(err.value)
    assert "postgresql+psycopg://, not postgres://" in central_url_problem("postgres://kiosk@central/kiosk")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_site_maximum_caps_local_setting(tmp_path):
    path = write(tmp_path, "[site]\nmax_idle_timeout_s = 120\n[session]\nidle_timeout_s = 120\nidle_warning_s = 30\n")
    assert load_config(path).session.idle_timeout_s == 120
