-- Take up to $2 tokens of provider $1's shared budget (src/db/budget.rs);
-- $3 is one token's worth of time and $4 the bucket's tolerance, both in
-- microseconds. Returns the tokens granted, or 0 and the microseconds
-- until one is free.
SELECT granted,
       (extract(epoch FROM wait) * 1000000)::bigint AS wait_us
FROM pricekeeper_take_budget($1, $2,
                             make_interval(secs => $3::bigint / 1e6),
                             make_interval(secs => $4::bigint / 1e6))
