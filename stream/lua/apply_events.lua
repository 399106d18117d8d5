-- Apply a batch of events to the stream aggregates, exactly once under at-least-once delivery.
--
-- The per-partition offset watermark lives in Redis beside the counters and is advanced in the same atomic
-- script, so an event redelivered after a crash or a rebalance (offset <= watermark) changes nothing.
--
-- Event time: windows end at the watermark (the largest event time applied so far). An out-of-order event
-- lands in its own bucket while that bucket is inside the window; one older than the 24 h window counts
-- in the totals (`<kind>:all`) only, and is reported as late.
--
-- Cost: Redis runs this script on its only thread, so it works on a per-batch copy of each item hash it
-- touches: each hash is read once per batch, every changed hash is written once at the end (one HSET,
-- one HDEL, one EXPIRE, one ZADD), and user counters are summed before they are written. The result is the
-- same as applying the events one by one (tests/stream/test_aggregates.py checks it against batches of one).
--
-- Sharded (features/aggregate_layout.py): every key is under `prefix`, one shard's; KEYS[1] is the shard's
-- offsets key, declared so that a Redis Cluster routes the call to the shard's slot. An event whose item and
-- user are in different shards comes to each as a half (`part` i: count the item only, u: the user only; b:
-- both). Only a half with the item counts as applied or redelivered, so the counts add up over shards.
--
-- ARGV: prefix, topic, half_life_ms, item_ttl_s, user_ttl_s, max_purchases, max_trending, n, then n events
--       of 8 fields (the constants come from features/schema.py and stream/aggregates.py, never copied here):
--       partition, offset, item_id, kind (v|c|a|p), ts_ms, category_id, user_id, part (b|i|u)
-- Returns: {applied, redelivered, late, watermark, n_items, item rows..., n_users, user rows...}
--   item row: item_id, v1h, c1h, a1h, p1h, v24h, c24h, a24h, p24h, trending (string), trending_ref_ms
--   user row: user_id, n_pairs, category, count, ..., n_purchases, purchase ...
local prefix, topic = ARGV[1], ARGV[2]
local half_life = tonumber(ARGV[3])
local ITEM_TTL, USER_TTL = tonumber(ARGV[4]), tonumber(ARGV[5])
local MAX_PURCHASES, MAX_TRENDING, n = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local HEADER = 8
local KINDS = {'v', 'c', 'a', 'p'}
local WEIGHT = {v = 1, c = 1, a = 3, p = 5}
local WINDOWS = {{name = '1h', width = 300000, count = 12}, {name = '24h', width = 3600000, count = 24}}
local decay = math.log(2) / half_life
local MISSING = false  -- a field the hash does not have (Lua tables cannot hold nil)

local offsets_key = prefix .. ':offsets:' .. topic
local wm_key = prefix .. ':watermark'
local wm = tonumber(redis.call('GET', wm_key) or '0')
local last_offset, changed_offset = {}, {}
local items, item_order, users, user_order = {}, {}, {}, {}
local applied, redelivered, late = 0, 0, 0

-- The batch's copy of one item hash, read whole when the batch first touches it: one HGETALL instead of a read
-- per field (moving a window probes every bucket that may have fallen out of it, and most do not exist).
local function item_hash(item)
  local h = items[item]
  if not h then
    h = {key = prefix .. ':item:' .. item, vals = {}, dirty = {}}
    local flat = redis.call('HGETALL', h.key)
    for j = 1, #flat, 2 do h.vals[flat[j]] = tonumber(flat[j + 1]) end
    items[item] = h
    table.insert(item_order, item)
  end
  return h
end

local function get(h, field)
  local v = h.vals[field]
  if v == MISSING then return nil end
  return v
end

local function set(h, field, value) h.vals[field] = value; h.dirty[field] = true end
local function del(h, field) h.vals[field] = MISSING; h.dirty[field] = true end
local function incr(h, field, by) set(h, field, (get(h, field) or 0) + by) end

-- Move an item's window to end at the current watermark, subtracting the buckets that fell out of it.
local function advance(h, w)
  local cur = math.floor(wm / w.width)
  local start = cur - w.count + 1
  local stored = get(h, 's:' .. w.name)
  local old = stored or start
  if old < start then
    local last = math.min(start - 1, old + w.count - 1)  -- older buckets were removed by earlier advances
    for b = old, last do
      for _, k in ipairs(KINDS) do
        local field = k .. ':' .. w.name .. ':' .. b
        local c = get(h, field) or 0
        if c > 0 then
          incr(h, k .. ':' .. w.name, -c)
          del(h, field)
        end
      end
    end
  end
  if stored ~= start then set(h, 's:' .. w.name, start) end
  return start
end

local function add_to_item(item, kind, ts)
  local h = item_hash(item)
  incr(h, kind .. ':all', 1)
  for _, w in ipairs(WINDOWS) do
    local start = advance(h, w)
    local b = math.floor(ts / w.width)
    if b >= start then
      incr(h, kind .. ':' .. w.name .. ':' .. b, 1)
      incr(h, kind .. ':' .. w.name, 1)
    elseif w.name == '24h' then
      late = late + 1
    end
  end
  local score = get(h, 'tr') or 0
  local ref = get(h, 'tr_ref') or ts
  if ts >= ref then
    score = score * math.exp(-(ts - ref) * decay) + WEIGHT[kind]
    ref = ts
  else
    score = score + WEIGHT[kind] * math.exp(-(ref - ts) * decay)
  end
  set(h, 'tr', score)
  set(h, 'tr_ref', ref)
end

-- Write one item hash's changes back: one HSET, one HDEL, its trending rank and its expiry.
local function flush(h, item)
  local sets, dels = {}, {}
  for field, _ in pairs(h.dirty) do
    local v = h.vals[field]
    if v == MISSING then
      table.insert(dels, field)
    else
      table.insert(sets, field)
      table.insert(sets, string.format('%.17g', v))
    end
  end
  if #sets > 0 then redis.call('HSET', h.key, unpack(sets)) end
  if #dels > 0 then redis.call('HDEL', h.key, unpack(dels)) end
  -- ln(score) + decay * ref ranks decayed scores of different reference times on one scale
  redis.call('ZADD', prefix .. ':trending', math.log(get(h, 'tr')) + decay * get(h, 'tr_ref'), item)
  redis.call('EXPIRE', h.key, ITEM_TTL)
end

-- Count one more for a user's field; the sums are written once per batch, in first-use order.
local function bump(u, field)
  if not u.incr[field] then u.incr[field] = 0; table.insert(u.fields, field) end
  u.incr[field] = u.incr[field] + 1
end

local function add_to_user(user, item, kind, category)
  local u = users[user]
  if not u then
    u = {key = prefix .. ':user:' .. user, incr = {}, fields = {}, purchases = false}
    users[user] = u
    table.insert(user_order, user)
  end
  if category ~= '' then bump(u, 'cat:' .. category) end
  if kind == 'p' then
    redis.call('RPUSH', u.key .. ':purchases', item)
    u.purchases = true
  end
  bump(u, 'events')
end

for i = 0, n - 1 do
  local base = HEADER + 1 + i * 8
  local part, off = ARGV[base], tonumber(ARGV[base + 1])
  local item, kind, ts = ARGV[base + 2], ARGV[base + 3], tonumber(ARGV[base + 4])
  local category, user, half = ARGV[base + 5], ARGV[base + 6], ARGV[base + 7]
  local counts_item, counts_user = half ~= 'u', half ~= 'i' and user ~= ''
  if last_offset[part] == nil then
    last_offset[part] = tonumber(redis.call('HGET', offsets_key, part) or '-1')
  end
  if off <= last_offset[part] then
    if counts_item then redelivered = redelivered + 1 end
  else
    last_offset[part] = off
    changed_offset[part] = true
    if ts > wm then wm = ts end
    if counts_item then
      applied = applied + 1
      add_to_item(item, kind, ts)
    end
    if counts_user then add_to_user(user, item, kind, category) end
  end
end
for part, _ in pairs(changed_offset) do redis.call('HSET', offsets_key, part, last_offset[part]) end
redis.call('SET', wm_key, wm)

local out = {applied, redelivered, late, wm, #item_order}
for _, item in ipairs(item_order) do
  local h = items[item]
  for _, w in ipairs(WINDOWS) do advance(h, w) end  -- the returned sums are as of the final watermark
  table.insert(out, item)
  for _, w in ipairs(WINDOWS) do
    for _, k in ipairs(KINDS) do table.insert(out, get(h, k .. ':' .. w.name) or 0) end
  end
  table.insert(out, string.format('%.17g', get(h, 'tr')))
  table.insert(out, get(h, 'tr_ref'))
  flush(h, item)
end
if redis.call('ZCARD', prefix .. ':trending') > MAX_TRENDING then
  redis.call('ZREMRANGEBYRANK', prefix .. ':trending', 0, -(MAX_TRENDING + 1))
end

table.insert(out, #user_order)
for _, user in ipairs(user_order) do
  local u = users[user]
  for _, field in ipairs(u.fields) do redis.call('HINCRBY', u.key, field, u.incr[field]) end
  redis.call('EXPIRE', u.key, USER_TTL)
  if u.purchases then
    redis.call('LTRIM', u.key .. ':purchases', -MAX_PURCHASES, -1)
    redis.call('EXPIRE', u.key .. ':purchases', USER_TTL)
  end
  local flat = redis.call('HGETALL', u.key)
  local cats = {}
  for j = 1, #flat, 2 do
    if string.sub(flat[j], 1, 4) == 'cat:' then
      table.insert(cats, string.sub(flat[j], 5)); table.insert(cats, tonumber(flat[j + 1]))
    end
  end
  local purchases = redis.call('LRANGE', u.key .. ':purchases', 0, -1)
  table.insert(out, user)
  table.insert(out, #cats / 2)
  for _, x in ipairs(cats) do table.insert(out, x) end
  table.insert(out, #purchases)
  for _, x in ipairs(purchases) do table.insert(out, x) end
end
return out
