import gc

import pytest

from bursar.gcpause import gc_paused


def test_the_collector_is_paused_inside_and_back_on_after_even_on_error():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the outer block owns the switch
            assert not gc.isenabled()
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


@pytest.mark.django_db
def test_ingest_leaves_the_collector_on(gateway):
    from tests.factories import native_event

    response = gateway.post("/api/v1/ingest/events", [native_event(request_id="gc-1")], format="json")
    assert response.status_code == 202
    bad = gateway.generic("POST", "/api/v1/ingest/events", b"{nope", content_type="application/json")
    assert bad.status_code == 400
    assert gc.isenabled()
