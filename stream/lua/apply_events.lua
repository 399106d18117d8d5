-- Apply a batch of events to the stream aggregates, exactly once under at-least-once delivery.
--
-- The per-partition offset watermark lives in Redis beside the counters and is advanced in the same atomic
-- script, so an event redelivered after a crash or a rebalance (offset <= watermark) changes nothing.
--
-- Event time: windows end at the watermark (the largest event time applied so far). An out-of-order event
-- lands in its own bucket while that bucket is inside the window; one older than the 24 h window counts
-- in the totals (`<kind>:all`) only, and is reported as late.
--
-- ARGV: prefix, topic, half_life_ms, n, then n events of 7 fields:
--       partition, offset, item_id, kind (v|c|a|p), ts_ms, category_id, user_id
-- Returns: {applied, redelivered, late, watermark, n_items, item rows..., n_users, user rows...}
--   item row: item_id, v1h, c1h, a1h, p1h, v24h, c24h, a24h, p24h, trending (string), trending_ref_ms
--   user row: user_id, n_pairs, category, count, ..., n_purchases, purchase ...
local prefix, topic = ARGV[1], ARGV[2]
local half_life, n = tonumber(ARGV[3]), tonumber(ARGV[4])
local KINDS = {'v', 'c', 'a', 'p'}
local WEIGHT = {v = 1, c = 1, a = 3, p = 5}
local WINDOWS = {{name = '1h', width = 300000, count = 12}, {name = '24h', width = 3600000, count = 24}}
local ITEM_TTL, USER_TTL, MAX_PURCHASES, MAX_TRENDING = 172800, 2592000, 50, 10000
local decay = math.log(2) / half_life

local offsets_key = prefix .. ':offsets:' .. topic
local wm_key = prefix .. ':watermark'
local wm = tonumber(redis.call('GET', wm_key) or '0')
local last_offset, changed_offset = {}, {}
local items, item_order, users, user_order = {}, {}, {}, {}
local applied, redelivered, late = 0, 0, 0

-- Move an item's window to end at the current watermark, subtracting the buckets that fell out of it.
local function advance(key, w)
  local cur = math.floor(wm / w.width)
  local start = cur - w.count + 1
  local old = tonumber(redis.call('HGET', key, 's:' .. w.name) or tostring(start))
  if old < start then
    local last = math.min(start - 1, old + w.count - 1)  -- older buckets were removed by earlier advances
    for b = old, last do
      for _, k in ipairs(KINDS) do
        local field = k .. ':' .. w.name .. ':' .. b
        local c = tonumber(redis.call('HGET', key, field) or '0')
        if c > 0 then
          redis.call('HINCRBY', key, k .. ':' .. w.name, -c)
          redis.call('HDEL', key, field)
        end
      end
    end
  end
  redis.call('HSET', key, 's:' .. w.name, start)
  return start
end

local function add_to_item(item, kind, ts)
  local key = prefix .. ':item:' .. item
  redis.call('HINCRBY', key, kind .. ':all', 1)
  for _, w in ipairs(WINDOWS) do
    local start = advance(key, w)
    local b = math.floor(ts / w.width)
    if b >= start then
      redis.call('HINCRBY', key, kind .. ':' .. w.name .. ':' .. b, 1)
      redis.call('HINCRBY', key, kind .. ':' .. w.name, 1)
    elseif w.name == '24h' then
      late = late + 1
    end
  end
  local score = tonumber(redis.call('HGET', key, 'tr') or '0')
  local ref = tonumber(redis.call('HGET', key, 'tr_ref') or tostring(ts))
  if ts >= ref then
    score = score * math.exp(-(ts - ref) * decay) + WEIGHT[kind]
    ref = ts
  else
    score = score + WEIGHT[kind] * math.exp(-(ref - ts) * decay)
  end
  redis.call('HSET', key, 'tr', string.format('%.17g', score), 'tr_ref', ref)
  -- ln(score) + decay * ref ranks decayed scores of different reference times on one scale
  redis.call('ZADD', prefix .. ':trending', math.log(score) + decay * ref, item)
  redis.call('EXPIRE', key, ITEM_TTL)
  if not items[item] then items[item] = true; table.insert(item_order, item) end
end

local function add_to_user(user, item, kind, category)
  local key = prefix .. ':user:' .. user
  if category ~= '' then redis.call('HINCRBY', key, 'cat:' .. category, 1) end
  if kind == 'p' then
    redis.call('RPUSH', key .. ':purchases', item)
    redis.call('LTRIM', key .. ':purchases', -MAX_PURCHASES, -1)
    redis.call('EXPIRE', key .. ':purchases', USER_TTL)
  end
  redis.call('HINCRBY', key, 'events', 1)
  redis.call('EXPIRE', key, USER_TTL)
  if not users[user] then users[user] = true; table.insert(user_order, user) end
end

for i = 0, n - 1 do
  local base = 5 + i * 7
  local part, off = ARGV[base], tonumber(ARGV[base + 1])
  local item, kind, ts = ARGV[base + 2], ARGV[base + 3], tonumber(ARGV[base + 4])
  local category, user = ARGV[base + 5], ARGV[base + 6]
  if last_offset[part] == nil then
    last_offset[part] = tonumber(redis.call('HGET', offsets_key, part) or '-1')
  end
  if off <= last_offset[part] then
    redelivered = redelivered + 1
  else
    last_offset[part] = off
    changed_offset[part] = true
    applied = applied + 1
    if ts > wm then wm = ts end
    add_to_item(item, kind, ts)
    if user ~= '' then add_to_user(user, item, kind, category) end
  end
end
for part, _ in pairs(changed_offset) do redis.call('HSET', offsets_key, part, last_offset[part]) end
redis.call('SET', wm_key, wm)
if redis.call('ZCARD', prefix .. ':trending') > MAX_TRENDING then
  redis.call('ZREMRANGEBYRANK', prefix .. ':trending', 0, -(MAX_TRENDING + 1))
end

local out = {applied, redelivered, late, wm, #item_order}
for _, item in ipairs(item_order) do
  local key = prefix .. ':item:' .. item
  for _, w in ipairs(WINDOWS) do advance(key, w) end  -- the returned sums are as of the final watermark
  local v = redis.call('HMGET', key, 'v:1h', 'c:1h', 'a:1h', 'p:1h', 'v:24h', 'c:24h', 'a:24h', 'p:24h', 'tr', 'tr_ref')
  table.insert(out, item)
  for j = 1, 8 do table.insert(out, tonumber(v[j] or '0')) end
  table.insert(out, v[9] or '0')
  table.insert(out, tonumber(v[10] or '0'))
end
table.insert(out, #user_order)
for _, user in ipairs(user_order) do
  local key = prefix .. ':user:' .. user
  local flat = redis.call('HGETALL', key)
  local cats = {}
  for j = 1, #flat, 2 do
    if string.sub(flat[j], 1, 4) == 'cat:' then
      table.insert(cats, string.sub(flat[j], 5)); table.insert(cats, tonumber(flat[j + 1]))
    end
  end
  local purchases = redis.call('LRANGE', key .. ':purchases', 0, -1)
  table.insert(out, user)
  table.insert(out, #cats / 2)
  for _, x in ipairs(cats) do table.insert(out, x) end
  table.insert(out, #purchases)
  for _, x in ipairs(purchases) do table.insert(out, x) end
end
return out
