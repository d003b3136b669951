-- Cold-chain excursions 冷链温度超标事件: each unbroken run of readings outside the allowed range
-- on one device is one event, with its start, end, extreme temperature and number of readings
-- (macro cold_chain_excursions).
{{ cold_chain_excursions(ref('stg_vendor__cold_chain_readings')) }}
