--- glow.prior: the densities latents are scored by. Every prior is a module
--- (parameters, zero_grad, ...) with
---   :log_prob(z [, cond]) -> tensor {n}: log p(z | cond), nats
---   :sample(shape, cond, {temperature = 1, seed = 0}) -> z of shape {n, h, w, c}:
---       mean + temperature * exp(logs) * eps
---   :backward(z, dlp [, cond]) -> dz [, dz1]: the gradients of
---       sum_i dlp[i] * log p(z_i | cond); its parameters' grads accumulate;
---       dz1 is the gradient with respect to cond.z1 when the prior uses it
--- cond is nil or {y = labels (0-based integers), z1 = the kept half (a
--- Split's prior)}. A top prior also has shape = {h, w, c}, the latent it
--- scores. A user's own prior with these methods plugs in wherever these do
--- (examples/custom_multiscale.lua writes a mixture of Gaussians in Lua).
---
--- The library's: StandardNormal, Learned (a mean and log-scale per latent
--- element, zero at start), ClassConditional (plus a linear map of
--- one_hot(y) to a mean and log-scale per channel) and SplitPrior (mean and
--- log-scale from a ZeroConv2d of z1); ClassHead is the classification head
--- that goes with a class-conditional prior.
local core = require "glow.core"
local util = require "glow.util"
local module = require "glow.module"
local nn = require "glow.nn"

local prior = {}

----------------------------------------------------------------- TopPrior
local TopPrior = module.class("TopPrior")
prior.TopPrior = TopPrior

--- TopPrior({h, w, c} [, {learn = bool, classes = k}]): the standard normal,
--- with learn a learned mean and logs per element, with classes a
--- zero-initialized linear map of one_hot(y) to (mean, logs) per channel.
function TopPrior.new(shape, opts)
  opts = util.check_options(opts, { learn = true, classes = true }, "TopPrior")
  if type(shape) ~= "table" or #shape ~= 3 then
    error("TopPrior: shape must be {h, w, c}, got " .. tostring(shape), 0)
  end
  local h, w, c = shape[1], shape[2], shape[3]
  local self = setmetatable({ shape = { h, w, c }, h = h, w = w, c = c, learn_top = opts.learn and true or false,
    classes = opts.classes }, TopPrior)
  if self.learn_top then
    module.param(self, "mean", core.tensor({ h, w, c }))
    module.param(self, "logs", core.tensor({ h, w, c }))
  end
  if self.classes then module.param(self, "class", core.tensor({ self.classes, 2 * c })) end
  return self
end

function prior.StandardNormal(shape) return TopPrior.new(shape) end
function prior.Learned(shape) return TopPrior.new(shape, { learn = true }) end
--- ClassConditional(shape, classes [, {learn = true}])
function prior.ClassConditional(shape, classes, opts)
  local learn = not (opts and opts.learn == false)
  return TopPrior.new(shape, { learn = learn, classes = classes })
end

local function labels(self, cond)
  if not self.classes then return nil end
  local y = cond and cond.y
  if y == nil then error("top prior: labels y are required (classes = " .. self.classes .. ")", 0) end
  return y
end

function TopPrior:moments(n, cond)
  if not self.learn_top and not self.classes then return nil, nil end
  return core.top_prior_params({ n, self.h, self.w, self.c }, self.mean, self.logs, self.class,
    labels(self, cond))
end

function TopPrior:log_prob(z, cond)
  local mean, logs = self:moments(z:shape()[1], cond)
  return core.gaussian_logp(z, mean, logs)
end

function TopPrior:backward(z, dlp, cond)
  local mean, logs = self:moments(z:shape()[1], cond)
  if not mean then return core.gaussian_logp_backward(z, nil, nil, dlp) end
  local dmean, dlogs = core.tensor(mean:shape()), core.tensor(logs:shape())
  local dz = core.gaussian_logp_backward(z, mean, logs, dlp, dmean, dlogs)
  local g = self.grad
  core.top_prior_backward(dmean, dlogs, labels(self, cond), g.mean, g.logs, g.class)
  return dz
end

function TopPrior:sample(shape, cond, opts)
  local mean, logs = self:moments(shape[1], cond)
  return core.gaussian_sample(shape, mean, logs, opts.temperature or 1, opts.seed or 0)
end

----------------------------------------------------------------- SplitPrior
--- SplitPrior(c1, c2): the prior of a Split's z2 (c2 channels) given z1 (c1
--- channels): (mean, logs) = halves of ZeroConv2d(c1, 2*c2)(z1). It is that
--- ZeroConv2d (its weight, bias and logscale are its own parameters), with
--- the prior's methods.
local SplitPrior = module.class("SplitPrior", nn.ZeroConv2d)
prior.SplitPrior = SplitPrior

function SplitPrior.new(c1, c2)
  local self = setmetatable(nn.ZeroConv2d.new(c1, 2 * c2), SplitPrior)
  self.c1, self.c2 = c1, c2
  return self
end

local function z1_of(cond)
  local z1 = cond and cond.z1
  if not util.is_tensor(z1) then error("the split prior needs cond.z1, the kept half", 0) end
  return z1
end

function SplitPrior:moments(z1)
  return core.split_channels(nn.ZeroConv2d.forward(self, z1), self.c2)
end

function SplitPrior:log_prob(z, cond)
  local mean, logs = self:moments(z1_of(cond))
  return core.gaussian_logp(z, mean, logs)
end

function SplitPrior:sample(shape, cond, opts)
  local mean, logs = self:moments(z1_of(cond))
  return core.gaussian_sample(shape, mean, logs, opts.temperature or 1, opts.seed or 0)
end

function SplitPrior:backward(z, dlp, cond)
  local z1 = z1_of(cond)
  -- the network's output goes on to its backward, which would otherwise run it again
  local h = nn.ZeroConv2d.forward(self, z1)
  local mean, logs = core.split_channels(h, self.c2)
  local dmean, dlogs = core.tensor(mean:shape()), core.tensor(logs:shape())
  local dz = core.gaussian_logp_backward(z, mean, logs, dlp, dmean, dlogs)
  local dz1 = nn.ZeroConv2d.backward(self, z1, core.concat_channels(dmean, dlogs), h)
  return dz, dz1
end

----------------------------------------------------------------- ClassHead
local ClassHead = module.class("ClassHead")
prior.ClassHead = ClassHead

--- ClassHead(c, classes [, {weight = w}]): logits = (spatial mean of the top
--- z) W + b, both zero at start; its loss is w * cross-entropy (w: the
--- weight of the classification loss in the objective's units).
function ClassHead.new(c, classes, opts)
  opts = util.check_options(opts, { weight = true }, "ClassHead")
  local self = setmetatable({ c = c, classes = classes, loss_weight = opts.weight or 1 }, ClassHead)
  module.param(self, "weight", core.tensor({ c, classes }))
  module.param(self, "bias", core.tensor({ classes }))
  return self
end

function ClassHead:forward(z) return core.classifier_forward(z, self.weight, self.bias) end

--- classify(z) -> tensor {n, classes}: class log-probabilities.
function ClassHead:classify(z)
  local logp = core.log_softmax_xent(self:forward(z))
  return logp
end

--- loss(z, y) -> the cross-entropy (mean over the batch, nats); keeps the
--- gradient of loss_weight * cross-entropy for backward.
function ClassHead:loss(z, y)
  local _, ce, dlogits = core.log_softmax_xent(self:forward(z), y, self.loss_weight)
  self._dlogits = dlogits
  return ce
end

--- backward(z) -> dz of loss_weight * the last loss(z, y); parameter grads accumulate.
function ClassHead:backward(z)
  local dlogits = self._dlogits
  self._dlogits = nil
  return core.classifier_backward(z, self.weight, dlogits, self.grad.weight, self.grad.bias)
end

function ClassHead:clear_state() self._dlogits = nil end

-- the priors also take autograd values (z and cond.z1): one tape node whose
-- backward is the prior's own (glow.autograd.builtin)
local ag = require "glow.autograd"
ag.builtin(TopPrior, "prior")
ag.builtin(SplitPrior, "prior")

return prior
