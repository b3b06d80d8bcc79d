from localbase.server import LocalbaseThread


async def test_anonymous_sign_in_returns_a_session(anon_client, localbase: LocalbaseThread) -> None:
    response = await anon_client.auth.sign_in_anonymously()

    assert response.session is not None
    assert response.user.is_anonymous
