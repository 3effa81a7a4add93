from ingest.formats.litellm import to_native


def test_anthropic_cache_reads_and_writes_from_the_usage_object_are_part_of_input():
    native = to_native(
        {
            "litellm_call_id": "call-1",
            "status": "success",
            "custom_llm_provider": "anthropic",
            "model": "anthropic/claude-haiku-4-5",
            "startTime": 1796412443.5,
            "endTime": 1796412444.0,
            "prompt_tokens": 5000,
            "completion_tokens": 50,
            "metadata": {"usage_object": {"cache_read_input_tokens": 3000, "cache_creation_input_tokens": 1500}},
        }
    )
    assert (native["input_tokens"], native["cached_input_tokens"], native["cache_write_tokens"]) == (5000, 3000, 1500)
    assert (native["provider"], native["model"], native["latency_ms"]) == ("anthropic", "claude-haiku-4-5", 500)


def test_openai_cached_tokens_come_from_prompt_tokens_details():
    native = to_native(
        {
            "litellm_call_id": "call-2",
            "status": "success",
            "model": "openai/gpt-4o-mini",
            "startTime": 1796412443.0,
            "prompt_tokens": 2000,
            "metadata": {"usage_object": {"prompt_tokens_details": {"cached_tokens": 1536}}},
        }
    )
    assert (native["provider"], native["input_tokens"], native["cached_input_tokens"]) == ("openai", 2000, 1536)


def test_a_failure_gets_its_own_request_id_and_error_status():
    native = to_native(
        {
            "litellm_call_id": "call-3",
            "status": "failure",
            "model": "openai/gpt-4o",
            "custom_llm_provider": "openai",
            "error_information": {"error_code": "429"},
            "response_cost": 0.0,
        }
    )
    assert (native["request_id"], native["status"]) == ("call-3:failed:gpt-4o", 429)
