"""deploy/nginx/tongxin.conf with a real nginx in front of a live `tongxin
serve`: TLS, a signed WeChat message answered through the proxy, an oversize
body refused by nginx, and no OpenID in nginx's access log."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.channels.wechat.security import wechat_signature
from nlu.parser import Parser
from tests.hardening.live import TOKEN, LiveServer, free_port, start_server

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "tongxin.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
USER = "oProxyUser0000000000000000001"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bot.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def proxied(
    tmp_path: Path, model_dir: Path, nlu_parser: Parser
) -> Iterator[tuple[str, str, Path, LiveServer]]:
    assert NGINX, "nginx is installed by scripts/test.sh (apt-get install nginx-light)"
    server = start_server(tmp_path, model_dir, {})
    upstream = server.url.removeprefix("http://")
    http_port, https_port = free_port(), free_port()
    cert, key = _self_signed(tmp_path)
    site = (
        CONF.read_text(encoding="utf-8")
        .replace("listen 80;", f"listen 127.0.0.1:{http_port};")
        .replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
        .replace("/etc/ssl/tongxin/fullchain.pem", str(cert))
        .replace("/etc/ssl/tongxin/privkey.pem", str(key))
        .replace("127.0.0.1:8080", upstream)
        .replace("/var/log/nginx/", f"{tmp_path}/")
    )
    assert site.count(str(tmp_path)) >= 3, "the example's placeholders changed"
    (tmp_path / "tongxin.conf").write_text(site, encoding="utf-8")
    temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    main = f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {tmp_path}/tongxin.conf;
}}
"""
    (tmp_path / "nginx.conf").write_text(main, encoding="utf-8")
    args = [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=20)
    assert check.returncode == 0, check.stderr
    nginx = subprocess.Popen(args, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{http_port}/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or nginx.poll() is not None:
                    raise
                time.sleep(0.1)
        yield (
            f"http://127.0.0.1:{http_port}",
            f"https://127.0.0.1:{https_port}",
            tmp_path / "tongxin.access.log",
            server,
        )
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            nginx.kill()
        server.stop()


def test_the_example_proxy_serves_wechat_over_tls_and_keeps_openids_out_of_its_log(
    proxied: tuple[str, str, Path, LiveServer],
) -> None:
    http_url, https_url, access_log, server = proxied
    with httpx.Client(verify=False, timeout=10) as client:
        health = client.get(https_url + "/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert client.get(https_url + "/anything-else").status_code == 404

        ts, nonce = str(int(time.time())), "4242"
        query = {
            "signature": wechat_signature(TOKEN, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "openid": USER,
        }
        xml = (
            "<xml><ToUserName><![CDATA[gh_tongxin0001]]></ToUserName>"
            f"<FromUserName><![CDATA[{USER}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[你好]]></Content><MsgId>25000000000000001</MsgId></xml>"
        )
        for url in (https_url, http_url):  # WeChat may call port 80 or 443
            answer = client.post(url + "/wechat", params=query, content=xml.encode())
            assert answer.status_code == 200 and "<xml>" in answer.text

        too_big = client.post(https_url + "/wechat", params=query, content=b"x" * 100_000)
        assert too_big.status_code == 413
    time.sleep(0.3)  # nginx writes its log line after the response
    log = access_log.read_text(encoding="utf-8")
    assert "POST /wechat" in log and "413" in log
    assert USER not in log and "signature" not in log
    tongxin_log = server.log()
    assert "POST /wechat" in tongxin_log and "413" not in tongxin_log  # refused at nginx
    assert USER not in tongxin_log and "signature=" not in tongxin_log
