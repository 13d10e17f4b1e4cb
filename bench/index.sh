# Shared by bench/latency.sh and bench/daily.sh (sourced): a CA with a certificate for the
# loopback servers, and a simple index of generated wheels served over HTTPS on loopback.

# make_tls_certificates DIR: DIR/ca.pem, and DIR/cert.pem and DIR/key.pem it signed.
make_tls_certificates() {
    certs=$1
    # A CA, and the loopback TLS servers' certificate it signed for every name the paths use.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=bench CA" \
        -keyout "$1/ca-key.pem" -out "$1/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
        -keyout "$1/key.pem" -out "$1/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,DNS:host.containers.internal,IP:127.0.0.1,IP:10.0.2.2\nbasicConstraints=CA:FALSE\n' >"$1/server.ext"
    openssl x509 -req -in "$1/server.csr" -CA "$1/ca.pem" -CAkey "$1/ca-key.pem" -CAcreateserial \
        -days 2 -extfile "$1/server.ext" -out "$1/cert.pem" 2>/dev/null
}

# start_wheel_index DIR: generates the wheels into DIR and serves them on 127.0.0.1 over HTTPS
# (keep-alive, with $certs' certificate); sets index_port and index_server (its pid).
start_wheel_index() {
    # A simple index of generated wheels: 30 packages of 20-400 KB, each pinned set member
    # depending on two more, as a project's requirements pull in theirs.
    local index=$1
    /usr/bin/python3 - "$index" <<'PY'
import base64, hashlib, io, os, random, sys, zipfile
root = sys.argv[1]
random.seed(7)
count = 30
for i in range(count):
    name = f"benchpkg{i:02d}"
    deps = [f"benchpkg{j:02d}==1.0" for j in (2 * i + 1, 2 * i + 2) if j < count]
    files = {
        f"{name}/__init__.py": b"DATA = %r\n" % base64.b64encode(random.randbytes(random.randint(15, 300) * 1024)),
        f"{name}-1.0.dist-info/METADATA": ("Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n%s" % (name, "".join(f"Requires-Dist: {d}\n" for d in deps))).encode(),
        f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    ) + f"{name}-1.0.dist-info/RECORD,,\n"
    files[f"{name}-1.0.dist-info/RECORD"] = record.encode()
    wheel = f"{name}-1.0-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(path, data)
    os.makedirs(f"{root}/simple/{name}", exist_ok=True)
    with open(f"{root}/simple/{name}/{wheel}", "wb") as f:
        f.write(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    with open(f"{root}/simple/{name}/index.html", "w") as f:
        f.write(f'<!DOCTYPE html><html><body><a href="{wheel}#sha256={digest}">{wheel}</a></body></html>\n')
PY
    index_port=$(shuf -i 20000-40000 -n 1)
    /usr/bin/python3 - "$index_port" "$index" "$certs/cert.pem" "$certs/key.pem" <<'PY' 2>/dev/null &
import functools, http.server, ssl, sys
port, root, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as PyPI serves pip
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=root))
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
PY
    index_server=$!
}
# The pinned set both benchmarks install: 3 packages that pull in the other 27.
pinned_wheels="benchpkg00==1.0 benchpkg03==1.0 benchpkg05==1.0"
