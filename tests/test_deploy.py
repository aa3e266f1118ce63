"""deploy/: the systemd unit, the docker-compose file and their settings hold together (nothing is started here):
the settings file is the schema's, paper, on the port the compose file's gateway relays, and every hydra command the
files run parses with the real command line."""
import configparser, shlex
from pathlib import Path

import yaml

from hydra_nb.cli import build_parser, _command_of
from hydra_nb.config import load_settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def parses(argv):
    ns = build_parser(_command_of(argv)).parse_args(argv)
    return ns.command


def test_deploy_settings_are_paper_on_the_relayed_gateway_port():
    env = {"IB_GATEWAY_HOST": "ib-gateway", "IB_GATEWAY_PORT": "4004", "HYDRA_TRADING_MODE": "paper"}
    st = load_settings(DEPLOY / "settings.ini", env=env)
    assert st.check_safety().value == "paper" and st.ib.host == "ib-gateway" and st.ib.port == 4004
    assert str(st.state_dir) == "/var/lib/hydra" and st.alerts.urls == ""


def test_compose_runs_a_paper_gateway_beside_hydra():
    c = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    gw, hy = c["services"]["ib-gateway"], c["services"]["hydra"]
    assert gw["environment"]["TRADING_MODE"] == "paper" and "4004" in gw["expose"]
    assert hy["environment"]["IB_GATEWAY_PORT"] == "4004" and hy["environment"]["HYDRA_TRADING_MODE"] == "paper"
    assert "ports" not in gw                                     # the API is not published on the host
    docker = (DEPLOY / "Dockerfile").read_text()
    assert 'CMD ["hydra", "health"]' in docker and 'CMD ["paper-trade"]' in docker
    assert parses(["paper-trade"]) == "paper-trade" and parses(["health"]) == "health"


def test_systemd_units_run_real_commands():
    for unit in ("hydra.service", "hydra-health.service"):
        cp = configparser.ConfigParser(strict=False, interpolation=None)
        cp.optionxform = str
        cp.read_string((DEPLOY / unit).read_text())
        argv = shlex.split(cp["Service"]["ExecStart"])
        assert argv[0] == "/opt/hydra-nb/bin/hydra" and parses(argv[1:]) in ("paper-trade", "health")
    svc = (DEPLOY / "hydra.service").read_text()
    assert "KillSignal=SIGTERM" in svc and "Restart=on-failure" in svc
