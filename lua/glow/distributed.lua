--- glow.distributed: data-parallel training over MPI (Open MPI), through the
--- optional C component glow.mpi.
---
---   glow.distributed.init()      -- once, at the start (under mpirun)
---   glow.distributed.rank(), .size(), .is_root(), .finalize()
---
--- Once initialized with more than one rank:
--- - model:train_step(x, y, opt) takes this rank's share of the global batch
---   and, before the update, replaces every rank's gradient by the average
---   over all images of the global batch: one MPI_Allreduce over the
---   optimizer's flat gradient arena (each rank's gradient weighted by its
---   image count, so unequal shares average right). Every rank then makes the
---   same update, and the loss and bits/dim it reports are the global batch's.
--- - glow.train.run gives each rank its contiguous share of every global batch
---   (the batch option is the global size), initializes every rank from the
---   same images (each rank computes the global data-dependent statistics
---   itself: no communication, identical results), broadcasts rank 0's
---   parameters before the first step all the same, evaluates the test set in
---   shares, and lets only rank 0 print, log and write checkpoints.
--- Without MPI (the component not built) init() raises an error that says so;
--- everything else works as one process (rank 0 of 1).
local dist = {}

local mpi -- the glow.mpi module, once init() succeeded
local rank, size = 0, 1

--- Whether this process was started by an MPI launcher (mpirun, srun).
function dist.launched()
  return os.getenv("OMPI_COMM_WORLD_SIZE") ~= nil or os.getenv("PMIX_RANK") ~= nil
    or os.getenv("PMI_SIZE") ~= nil
end

--- Whether the MPI component was built (glow.mpi can be loaded).
function dist.available()
  local ok = pcall(require, "glow.mpi")
  return ok
end

--- init() -> rank, size. Idempotent.
function dist.init()
  if mpi then return rank, size end
  local ok, m = pcall(require, "glow.mpi")
  if not ok then
    error("glow.distributed.init: this build of glow has no MPI component (glow.mpi); install "
      .. "Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev) and rebuild", 0)
  end
  m.init()
  mpi = m
  rank, size = m.rank(), m.size()
  return rank, size
end

function dist.initialized() return mpi ~= nil end
function dist.rank() return rank end
function dist.size() return size end
function dist.is_root() return rank == 0 end

--- finalize(): ends MPI (after it, this process cannot communicate again).
function dist.finalize()
  if mpi then
    mpi.finalize()
    mpi = nil
  end
  rank, size = 0, 1
end

--- share(n) -> first, last: this rank's contiguous share of n items
--- (1-based, inclusive; first > last when it is empty).
function dist.share(n)
  return n * rank // size + 1, n * (rank + 1) // size
end

--- sum(list of numbers) -> the element-wise sums over the ranks.
function dist.sum(values)
  if size == 1 then return values end
  return mpi.sum(values)
end

--- allreduce(t): t <- the sum of t over the ranks, in place.
function dist.allreduce(t)
  if size > 1 then mpi.allreduce(t) end
  return t
end

--- broadcast(t [, root]): t <- root's t (rank 0 by default), in place.
function dist.broadcast(t, root)
  if size > 1 then mpi.broadcast(t, root or 0) end
  return t
end

--- abort(message): print message on stderr and end every rank of the job
--- (MPI_Abort); without MPI it returns and the caller raises the error.
function dist.abort(message)
  if mpi and size > 1 then
    io.stderr:write(string.format("glow.distributed: rank %d: %s; ending the job\n", rank, tostring(message)))
    io.stderr:flush()
    mpi.abort(1)
  end
end

function dist.barrier()
  if size > 1 then mpi.barrier() end
end

--- average(opt, stats, n): the training step's reduction. opt.grad holds
--- this rank's mean gradient over its n images, stats its loss and bits/dim;
--- afterwards both are the global batch's means on every rank.
function dist.average(opt, stats, n)
  if size == 1 then return stats end
  local s = mpi.sum { n, n * stats.loss, n * (stats.bpd or stats.loss), n * (stats.xent or 0) }
  local total = s[1]
  if total <= 0 then error("glow.distributed: a global batch without images", 0) end
  -- sum over ranks of (n / total) * this rank's mean: one pass over the arena
  opt.grad:scale_(n / total)
  mpi.allreduce(opt.grad)
  stats.loss, stats.bpd = s[2] / total, s[3] / total
  if stats.xent then stats.xent = s[4] / total end
  stats.images = total
  return stats
end

return dist
