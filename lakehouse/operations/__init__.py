"""Operations stage: running and looking after the platform: streaming health
(:mod:`.stream_status`), SQL (:mod:`.sql`), table maintenance (:mod:`.maintenance`) and the smoke
round trip (:mod:`.smoke`)."""
