"""Hostile inputs (issue 26): what a shared page may carry, what a command may overwrite, folders whose
store is gone, damaged files, method files that exit or hang at import. Tmp folders and loopback only;
nothing here writes outside its tmp folder or to a device file, and nothing trains."""

from __future__ import annotations

import base64
import re

from tests.test_researcher import file_campaign

SECRET = b"top-secret-bytes-26\n"  # stands in for /etc/hostname, ~/.ray/auth_token or an SSH key


def hostile_study(tmp_path, secret) -> str:
    """A study file whose description and variant names carry image lines, HTML and quotes."""
    path = tmp_path / "hostile.toml"
    path.write_text(
        'method = "airbench94"\n'
        f'description = "intro\\n![x]({secret})\\n![y](../{secret.name})\\n![h](/etc/hostname)"\n'
        'primary = "half_epochs"\n'
        "[base]\nn_train = 1000\nn_test = 500\nwidths = [16, 32, 32]\nbatch_size = 100\n"
        "whiten_samples = 500\nepochs = 2.0\n"
        "[variants.half_epochs]\nepochs = 1.0\n"
        f'[variants."<script>alert(1)</script> & \\"q\\" \'s\\n![z]({secret})"]\nepochs = 1.5\n'
    )
    return str(path)


def page_bytes(text: str) -> bytes:
    """The page and every base64 payload in it, decoded: where a copied file's bytes would be."""
    blobs = [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)", text)]
    return text.encode() + b"".join(blobs)


def test_report_html_inlines_no_file_a_description_or_variant_name_names(tmp_path):
    from harness.cli.report import main as report_main

    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + SECRET)  # even a real PNG: it is not under figures/
    out = file_campaign(tmp_path, seeds=4, path=hostile_study(tmp_path, secret), adaptive=False)
    assert report_main([str(out)]) == 0
    page = (out / "report.html").read_text()
    assert SECRET not in page_bytes(page)
    blobs = [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)", page)]
    assert all(b.startswith(b"\x89PNG") for b in blobs) and "/etc/hostname" in page  # named, not copied
    assert (
        len(re.findall(r'<img src="data:image/png;base64,', page)) >= 1
    )  # the study's own figures still inline
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in page
    markdown = (out / "report.md").read_text()
    images = [line for line in markdown.splitlines() if line.startswith("![")]
    assert images and all(re.match(r"!\[[^\]]*\]\(figures/[\w.-]+\)$", line) for line in images), images


def test_only_pngs_under_figures_are_inlined_links_and_other_files_are_not(tmp_path):
    from harness.report.html import to_html

    (tmp_path / "figures").mkdir()
    png = b"\x89PNG\r\n\x1a\n" + b"figure"
    (tmp_path / "figures" / "ok.png").write_bytes(png)
    (tmp_path / "figures" / "notes.png").write_bytes(SECRET)  # under figures/, but not a PNG
    (tmp_path / "outside.png").write_bytes(png + SECRET)
    (tmp_path / "figures" / "link.png").symlink_to(tmp_path / "outside.png")  # resolves outside figures/
    lines = ["ok", "notes", "link"] + ["../outside", str(tmp_path / "outside"), "figures/../outside"]
    page = to_html(
        "\n\n".join(f"![{n}](figures/{n}.png)" if "/" not in n else f"![n]({n}.png)" for n in lines), tmp_path
    )
    inlined = [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)", page)]
    assert inlined == [png]
    assert page.count("is missing or not a PNG under figures/") == 5
