--[[
  features-apply: applies merged feature updates to entity hashes of one feature view. Each
  update is what a run of records (in partition order) contributes to one entity: the sink
  merges a batch per entity in Node (lib/features/algebra.ts) and sends one update per
  entity, so Redis does one read and one write per entity, not per record.

  KEYS[1], KEYS[2], ...  entity hash of each update, <prefix>sf:v1:fv:<view>:<entity id>
  ARGV[1]                F, the number of features of the view
  ARGV[2]                entity TTL, s (0: the hash never expires; else refreshed on every write)
  ARGV[3 .. 2 + 4F]      per feature: kind, name, p1, p2 (last_n: n, ""; window_*: window ms,
                         windows kept; others: "", "")
  then, for each KEYS[i] in order, a group:
           n                  number of ARGV items in this group, n included
           P                  number of source partitions the update's records come from
           P times:
             watermark field  @o:<cluster>:<topic>:<partition> (in the entity hash)
             first offset, seq  position of the partition's first record in the update
             last offset, seq   ((offset, seq): seq numbers the records one offset produced
                                for this entity)
           then per feature, in the order above: "" when the update leaves it alone, else
             counter          sum, newest event time
             latest           JSON text, its event time
             min | max        value, its event time
             last_n           k, then k pairs (JSON text, event time), newest first
             window_*         newest event time, its window start, k, then k pairs
                              (window start, amount)

  Returns an array: per KEYS[i], 1 when applied. With P = 1: 0 when every record of the
  update was applied already, or the stored watermark "<offset>:<seq>" when only the records
  up to it were (a replayed batch that ends elsewhere than the first try): the caller then
  sends the records after it as a new update. With P > 1 (batches of several partitions
  merged): -1 unless no record of any partition was applied yet; the caller then sends one
  update per partition. Nothing is changed unless 1 is returned.
  Replays: a partition is consumed in order and batches are retried whole, so a record at or
  below the entity's watermark for its partition was applied already. The watermark lives in
  the entity hash (one field per source partition): no key per record, nothing to expire.
  Semantics are those of lib/features/algebra.ts `applyMerged`: latest keeps the newest by
  event time (a tie: the later record); min/max replace only when strictly better; last_n
  keeps the n newest; windows keep the last `kept` windows up to the newest one seen.
  Cost per update: one HMGET, one HSET, (HDEL), (EXPIRE). Field names are built once per call.
]]

-- Builtins as locals, and `s + 0` (the VM's own string to number coercion) instead of
-- tonumber(s) on the hot path: a C call costs more than the arithmetic around it.
local tonumber, format, match, unpack, call = tonumber, string.format, string.match, unpack, redis.call

-- A number as the hash stores it: an integer (below 1e14, exactly what Lua's own number
-- to string conversion writes) is handed to HSET as is; anything else gets 15 digits.
local function fmt(x)
  if x % 1 == 0 and x < 1e14 and x > -1e14 then return x end
  return format('%.15g', x)
end

local F, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
-- per feature: kind, name, parameters, and where its stored fields are in the HMGET reply
local kind, name, p1, p2, fat, fts, fh, at1, at2 = {}, {}, {}, {}, {}, {}, {}, {}, {}
local fixed = {}
for f = 1, F do
  local b = 3 + (f - 1) * 4
  local k, nm = ARGV[b], ARGV[b + 1]
  kind[f], name[f], p1[f], p2[f] = k, nm, tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  fat[f] = nm .. '@t'
  if k == 'counter' or k == 'last_n' then
    fixed[#fixed + 1] = nm
    at1[f] = #fixed
    if k == 'last_n' then
      fts[f] = nm .. '@ts'
      fixed[#fixed + 1] = fts[f]
    else
      fixed[#fixed + 1] = fat[f]
    end
    at2[f] = #fixed
  elseif k == 'latest' then
    fixed[#fixed + 1] = fat[f]
    at1[f] = #fixed
  elseif k == 'min' or k == 'max' then
    fixed[#fixed + 1] = nm
    at1[f] = #fixed
  else -- window_count | window_sum
    fh[f] = nm .. '@h'
    fixed[#fixed + 1] = fh[f]
    at1[f] = #fixed
    fixed[#fixed + 1] = fat[f]
    at2[f] = #fixed
  end
end
local nfixed = #fixed

-- Applies the group of ARGV items b .. (end of group) to one entity hash.
local function apply(entity, b)
  local P = ARGV[b] + 0
  -- one read of every field the updates look at: the fixed fields, the watermarks, the windows
  local want = { unpack(fixed) }
  local nw = nfixed
  for p = 0, P - 1 do
    nw = nw + 1
    want[nw] = ARGV[b + 1 + 5 * p]
  end
  local first = b + 1 + 5 * P
  local i = first
  for f = 1, F do
    if ARGV[i] == '' then
      i = i + 1
    else
      local k = kind[f]
      if k == 'last_n' then
        i = i + 1 + 2 * tonumber(ARGV[i])
      elseif k == 'window_count' or k == 'window_sum' then
        local n = ARGV[i + 2] + 0
        for j = i + 3, i + 2 + 2 * n, 2 do
          nw = nw + 1
          want[nw] = name[f] .. '|' .. ARGV[j]
        end
        i = i + 3 + 2 * n
      else
        i = i + 2
      end
    end
  end
  local got = call('HMGET', entity, unpack(want))
  local out, no, dels = {}, 0, nil
  for p = 0, P - 1 do
    local c = b + 1 + 5 * p
    local w = got[nfixed + 1 + p]
    if w then
      local o, q = match(w, '^(%d+):(%d+)$')
      o, q = o + 0, q + 0
      local lo = ARGV[c + 1] + 0
      if P > 1 then
        if lo < o or (lo == o and ARGV[c + 2] + 0 <= q) then return -1 end
      else
        local hi = ARGV[c + 3] + 0
        if hi < o or (hi == o and ARGV[c + 4] + 0 <= q) then return 0 end
        if lo < o or (lo == o and ARGV[c + 2] + 0 <= q) then return w end
      end
    end
    out[no + 1], out[no + 2] = ARGV[c], ARGV[c + 3] .. ':' .. ARGV[c + 4]
    no = no + 2
  end

  local wi = nfixed + P -- next window field in `got`
  i = first
  for f = 1, F do
    if ARGV[i] == '' then
      i = i + 1
    else
      local k, nm = kind[f], name[f]
      if k == 'counter' then
        out[no + 1], out[no + 2] = nm, fmt((got[at1[f]] or 0) + ARGV[i])
        no = no + 2
        local old = got[at2[f]]
        if not old or ARGV[i + 1] + 0 > old + 0 then
          out[no + 1], out[no + 2] = fat[f], ARGV[i + 1]
          no = no + 2
        end
        i = i + 2
      elseif k == 'latest' then
        local old = got[at1[f]]
        if not old or ARGV[i + 1] + 0 >= old + 0 then
          out[no + 1], out[no + 2], out[no + 3], out[no + 4] = nm, ARGV[i], fat[f], ARGV[i + 1]
          no = no + 4
        end
        i = i + 2
      elseif k == 'min' or k == 'max' then
        local old, v = got[at1[f]], ARGV[i] + 0
        if not old or (k == 'min' and v < old + 0) or (k == 'max' and v > old + 0) then
          out[no + 1], out[no + 2], out[no + 3], out[no + 4] = nm, ARGV[i], fat[f], ARGV[i + 1]
          no = no + 4
        end
        i = i + 2
      elseif k == 'last_n' then
        local keep, n = p1[f], tonumber(ARGV[i])
        local vals, times = {}, {}
        if got[at1[f]] then
          vals = cjson.decode(got[at1[f]])
          times = cjson.decode(got[at2[f]])
        end
        local changed = false
        -- oldest first, each before the first kept value no newer than it (a tie came later)
        for j = i + 2 * n - 1, i + 1, -2 do
          local t = tonumber(ARGV[j + 1])
          local pos = #times + 1
          for p = 1, #times do
            if t >= times[p] then pos = p break end
          end
          if pos <= keep then
            table.insert(vals, pos, cjson.decode(ARGV[j]))
            table.insert(times, pos, t)
            while #vals > keep do table.remove(vals) table.remove(times) end
            changed = true
          end
        end
        if changed then
          out[no + 1], out[no + 2], out[no + 3], out[no + 4], out[no + 5], out[no + 6] = nm, cjson.encode(vals), fts[f], cjson.encode(times), fat[f], fmt(times[1])
          no = no + 6
        end
        i = i + 1 + 2 * n
      else -- window_count | window_sum
        local size, span = p1[f], p1[f] * p2[f]
        local newest, nhead, n = ARGV[i], ARGV[i + 1] + 0, ARGV[i + 2] + 0
        local h0 = got[at1[f]] -- false when never written
        if h0 then h0 = h0 + 0 end
        if not h0 or nhead > h0 - span then
          local head = h0
          if not h0 or nhead > h0 then
            head = nhead
            out[no + 1], out[no + 2] = fh[f], ARGV[i + 1]
            no = no + 2
            -- the window moved on: drop kept windows that fall out of the last `kept`
            if h0 then
              for q = 0, p2[f] - 1 do
                local s = h0 - q * size
                if s <= head - span then
                  dels = dels or {}
                  dels[#dels + 1] = nm .. '|' .. fmt(s)
                end
              end
            end
          end
          for j = i + 3, i + 2 + 2 * n, 2 do
            wi = wi + 1
            if ARGV[j] + 0 > head - span then
              out[no + 1], out[no + 2] = want[wi], fmt((got[wi] or 0) + ARGV[j + 1])
              no = no + 2
            end
          end
          local old = got[at2[f]]
          if not old or newest + 0 > old + 0 then
            out[no + 1], out[no + 2] = fat[f], newest
            no = no + 2
          end
        else
          wi = wi + n
        end
        i = i + 3 + 2 * n
      end
    end
  end

  if dels then call('HDEL', entity, unpack(dels)) end
  call('HSET', entity, unpack(out))
  if ttl > 0 then call('EXPIRE', entity, ttl) end
  return 1
end

local results, b = {}, 3 + 4 * F
for k = 1, #KEYS do
  results[k] = apply(KEYS[k], b + 1)
  b = b + tonumber(ARGV[b])
end
return results
