"""The SIP edge's rendered configuration: Kamailio accepts it for any number of reporters, the
ring lane is there and every other reporter waits for it; a token that would break it is refused."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from geodispatch.calls.kamailio import EdgeConfig, render
from tests.helpers import require_sip_tools


@pytest.mark.parametrize("reporters", [1, 4, 9])
def test_kamailio_accepts_the_rendered_config(tmp_path: Path, reporters: int) -> None:
    """`kamailio -c` passes; one queue and timer per reporter plus the ring lane's."""
    require_sip_tools()
    cfg = EdgeConfig("127.0.0.1", 5999, "127.0.0.1:5998", "127.0.0.1:5997",
                     "http://127.0.0.1:1/api/calls/sip", token="s3cret", reporters=reporters)
    text = render(cfg)
    path = tmp_path / "kamailio.cfg"
    path.write_text(text)
    binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
    check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-2000:]
    assert text.count('modparam("mqueue", "mqueue", "name=') == reporters + 1
    assert text.count("route[REPORTER_") == reporters + 1
    assert 'mq_add("ring", "r", "$var(q)")' in text
    assert text.count('if (mq_size("ring") > 0 || $shv(ring_busy) == 1)') == reporters
    assert "http://127.0.0.1:1/api/calls/sip/batch" in text
    assert "X-Phone-System-Token: s3cret" in text
    assert re.findall(r"@[A-Z_]+@", text) == []  # every placeholder filled


@pytest.mark.parametrize("bad", ['a"b', "a\nb", "a\\b"])
def test_a_token_that_breaks_the_config_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        render(EdgeConfig("127.0.0.1", 5999, "x:1", "x:2", "http://x/api/calls/sip", token=bad))


def test_reporter_bounds() -> None:
    with pytest.raises(ValueError):
        render(EdgeConfig("127.0.0.1", 5999, "x:1", "x:2", "http://x/api/calls/sip",
                          reporters=0))
