from profiles.models import Profile


def test_records_sharing_an_email_end_on_one_profile(make_source, send_records, staff_client):
    crm, erp = make_source("crm", "crm"), make_source("erp", "erp")
    send_records(
        crm, [{"external_id": "C1", "attributes": {"first_name": "Jon", "email": "Jon@Example.org"}}]
    )
    send_records(
        erp, [{"external_id": "E1", "attributes": {"first_name": "Jonathan", "email": "jon@example.org "}}]
    )

    profile = Profile.objects.get(status=Profile.Status.ACTIVE)
    body = staff_client.get(f"/api/v1/profiles/{profile.pk}").json()
    assert body["attributes"]["first_name"]["value"] == "Jon"  # the CRM outranks the ERP
    assert body["attributes"]["first_name"]["source"] == "crm"
    assert {c["value"] for c in body["attributes"]["first_name"]["candidates"]} == {"Jon", "Jonathan"}
