"""Issue 21 item 6: super-admin (every tenant) apart from a tenant's admin, and private files.

API_KEYS keys, anonymous local callers and keys created with role `superadmin` may name any tenant
(X-Tenant, ?tenant=); a tenant's `admin` key reaches its own tenant's admin endpoints only. Files the
service creates are 0600 and its directories 0700.
"""
import io
import os
import stat

from service.access import create_key, tenant_id_named
from tests.test_corrections import finished
from tests.test_tenants import ADMIN_KEY, image_bytes, keyed


def test_only_super_admins_choose_another_tenant(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    beta_client, _ = create_key(rt.db, "beta")
    alpha_admin, _ = create_key(rt.db, "alpha", role="admin")
    root, _ = create_key(rt.db, "ops", role="superadmin")
    finished(rt, "beta.png", tenant_id=tenant_id_named(rt.db, "beta"))

    def as_(key, tenant, path="/api/extract_results"):
        return client.get(path, headers={**keyed(key), "X-Tenant": tenant})

    for key in (ADMIN_KEY, root):  # super-admins: any tenant, 404 for none
        answer = as_(key, "beta")
        assert answer.status_code == 200 and [r["filename"] for r in answer.get_json()["results"]] == ["beta.png"]
        assert as_(key, "nobody").status_code == 404
    # A tenant's admin: its own tenant only; another tenant, existing or not, is the same 403.
    assert as_(alpha_admin, "alpha").status_code == 200
    for tenant in ("beta", "nobody"):
        answer = as_(alpha_admin, tenant)
        assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "forbidden", tenant
    assert client.get("/api/extract_results?tenant=beta", headers=keyed(alpha_admin)).status_code == 403
    refused = client.put("/api/webhooks/config", headers={**keyed(alpha_admin), "X-Tenant": "beta"},
                         json={"url": "https://example.com/hook"})
    assert refused.status_code == 403
    # ...but its own tenant's admin endpoints still answer it.
    assert client.get("/api/webhooks/config", headers=keyed(alpha_admin)).status_code == 200
    assert as_(beta_client, "beta").status_code == 403  # clients never choose


def test_files_and_directories_the_service_creates_are_private(make_app, service_env):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    answer = app.test_client().post("/api/upload", headers=keyed(ADMIN_KEY), content_type="multipart/form-data",
                                    data={"nombre": "Ana", "files": [(io.BytesIO(image_bytes(3)), "r.png")]})
    assert answer.status_code == 200, answer.get_json()
    stored = [path for path in service_env.rglob("*") if path.is_file()]
    assert any(path.suffix == ".png" for path in stored)
    for path in stored:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))
    for path in [service_env, *(p for p in service_env.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))
    assert os.umask(0o077) == 0o077  # set process-wide at start-up (app.restrict_new_files)
    database = rt.db.engine.url.database
    if database and os.path.exists(database):  # SQLite: the database file too
        assert stat.S_IMODE(os.stat(database).st_mode) & 0o077 == 0
