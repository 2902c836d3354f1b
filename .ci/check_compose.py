"""Parse-checks docker-compose.yml (Docker is not available in CI): valid YAML, the services and
their dependencies exist, files it mounts or builds from exist, healthchecks everywhere."""
import pathlib
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
doc = yaml.safe_load((root / "docker-compose.yml").read_text())
services = doc["services"]
errors = []
for name in ["postgres", "server-a", "server-b", "lb", "keygen"]:
    if name not in services:
        errors.append(f"service {name} missing")
for name, svc in services.items():
    for dep in (svc.get("depends_on") or {}):
        if dep not in services:
            errors.append(f"{name} depends on unknown {dep}")
    build = svc.get("build")
    if build and not (root / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).exists():
        errors.append(f"{name}: Dockerfile not found")
    for vol in svc.get("volumes") or []:
        src = vol.split(":")[0]
        if src.startswith("./") and not (root / src).exists():
            errors.append(f"{name}: mounted file {src} not found")
        elif not src.startswith(("./", "/")) and src not in (doc.get("volumes") or {}):
            errors.append(f"{name}: named volume {src} not declared")
    if name != "keygen" and "healthcheck" not in svc:
        errors.append(f"{name}: no healthcheck")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"docker-compose.yml: {len(services)} services check out")
