-- Argo CD health check for barrage.dev/LoadTest (Lua 5.1, as Argo CD runs it).
--
-- A LoadTest is a one-shot gate: Progressing until it has a verdict, then
-- Healthy if it passed and Degraded if it did not (failed thresholds, a
-- failed runner, an abort, an invalid spec). A failed verdict is unhealthy
-- on purpose: an Argo CD sync wave or a PostSync hook that waits for health
-- then stops the rollout.
local hs = {}

local function condition(st, type_)
  if st.conditions == nil then
    return nil
  end
  for _, c in ipairs(st.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

-- "p(95) < 50ms (observed 61.2ms); ..." for the thresholds that failed.
local function failed_thresholds(st)
  local out = {}
  if st.thresholds ~= nil then
    for _, t in ipairs(st.thresholds) do
      if t.passed == false then
        table.insert(out, tostring(t.source) .. " (observed " .. tostring(t.observedText or "no data") .. ")")
      end
    end
  end
  return table.concat(out, "; ")
end

local function running_figures(st)
  local parts = {}
  if st.runners ~= nil then
    table.insert(parts, st.runners .. " runners")
  end
  if st.rps ~= nil then
    table.insert(parts, tostring(st.rps) .. " req/s")
  end
  if st.latencyMs ~= nil and st.latencyMs.p95 ~= nil then
    table.insert(parts, "p95 " .. tostring(st.latencyMs.p95) .. "ms")
  end
  if st.errorRate ~= nil then
    table.insert(parts, "errors " .. st.errorRate)
  end
  return table.concat(parts, ", ")
end

local st = obj.status
if st == nil or st.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick the test up"
  return hs
end

local phase = st.phase
local generation = obj.metadata ~= nil and obj.metadata.generation or nil
local validated = condition(st, "Validated")

if validated ~= nil and validated.status == "False" then
  -- The operator validates a rejected spec again once it changes.
  if generation ~= nil and st.observedGeneration ~= nil and st.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "The spec changed: waiting for the operator to validate generation " .. tostring(generation)
    return hs
  end
  hs.status = "Degraded"
  hs.message = st.message or validated.message or "invalid spec"
  return hs
end

if phase == "Pending" then
  hs.status = "Progressing"
  hs.message = "Pending: the operator is validating the spec"
elseif phase == "Provisioning" then
  hs.status = "Progressing"
  hs.message = "Provisioning: the setup job is running"
elseif phase == "Starting" then
  hs.status = "Progressing"
  hs.message = "Starting: " .. tostring(st.runners or "0/?") .. " runners ready"
elseif phase == "Running" then
  hs.status = "Progressing"
  local figures = running_figures(st)
  if st.message ~= nil then
    -- e.g. "aborting: threshold ... failed" while the runners stop.
    hs.message = "Running: " .. st.message
  elseif figures ~= "" then
    hs.message = "Running: " .. figures
  else
    hs.message = "Running"
  end
elseif phase == "TearingDown" then
  -- The load's verdict is known; the final phase waits for spec.teardown
  -- (which fails the test too only with failsTest).
  hs.status = "Progressing"
  hs.message = "TearingDown: the teardown job is running; the load's verdict: " .. tostring(st.verdict or "none")
elseif phase == "Succeeded" then
  local passed = condition(st, "Passed")
  local failed = failed_thresholds(st)
  if st.verdict == "Failed" or (passed ~= nil and passed.status == "False") or failed ~= "" then
    hs.status = "Degraded"
    if failed ~= "" then
      hs.message = "Verdict Failed: thresholds failed: " .. failed
    else
      hs.message = "Verdict Failed: " .. tostring(st.message or "")
    end
  else
    hs.status = "Healthy"
    hs.message = st.message or "Passed"
  end
elseif phase == "Failed" or phase == "Aborted" then
  hs.status = "Degraded"
  if st.message ~= nil then
    hs.message = st.message
  else
    local failed = failed_thresholds(st)
    if failed ~= "" then
      hs.message = "thresholds failed: " .. failed
    else
      hs.message = phase
    end
  end
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
