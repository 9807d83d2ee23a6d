/**
 * Which GPUs a launch uses: `--gpus` parsing, the `nvidia-smi` inventory, and the check that the GPUs asked
 * for exist and are free.
 */
import { execCapture } from './proc.js'

/**
 * What `--gpus` (or the `gpus` option) asks for:
 * - `{ kind: 'all' }`: every GPU `nvidia-smi` lists (`all`);
 * - `{ kind: 'count', count }`: the first `count` GPUs (`8`; a bare number is a count, not an index);
 * - `{ kind: 'list', indices }`: these GPU indices, in this order (`0-7`, `0,2,4`, `0-3,6`; one GPU by
 *   index: `3-3` or `3,`).
 */
export type GpuSelection = { kind: 'all' } | { kind: 'count'; count: number } | { kind: 'list'; indices: number[] }

/** A GPU spec: a count (`8`), a list of indices (`[0, 2, 4]`), or the `--gpus` text (`'0-7'`, `'0,2,4'`, `'8'`, `'all'`). */
export type GpuSpec = number | readonly number[] | string

/**
 * Parse a GPU spec; throws a `TypeError` saying what is wrong.
 * @example
 * parseGpus('0-7') // { kind: 'list', indices: [0, 1, 2, 3, 4, 5, 6, 7] }
 * parseGpus('0,2,4') // { kind: 'list', indices: [0, 2, 4] }
 * parseGpus('8') // { kind: 'count', count: 8 }
 * parseGpus(8) // { kind: 'count', count: 8 }
 */
export function parseGpus(spec: GpuSpec): GpuSelection {
  const bad = (why: string): never => {
    throw new TypeError(`[prefpipe] --gpus ${JSON.stringify(spec)}: ${why} (write a count like 8, a range like 0-7, a list like 0,2,4, or all)`)
  }
  if (typeof spec === 'number') {
    if (!Number.isInteger(spec) || spec < 1) bad('a count must be a whole number of at least 1')
    return { kind: 'count', count: spec }
  }
  if (typeof spec !== 'string') return listOf([...spec], bad)
  const text = spec.trim()
  if (text === 'all') return { kind: 'all' }
  if (/^\d+$/.test(text)) return parseGpus(Number(text))
  if (!/^[\d,\s-]+$/.test(text)) bad('unexpected characters')
  const indices: number[] = []
  for (const part of text.split(',').map((p) => p.trim())) {
    if (part === '') continue
    const range = /^(\d+)-(\d+)$/.exec(part)
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])]
      if (b < a) bad(`the range ${part} runs backwards`)
      for (let i = a; i <= b; i++) indices.push(i)
    } else if (/^\d+$/.test(part)) indices.push(Number(part))
    else bad(`cannot read "${part}"`)
  }
  return listOf(indices, bad)
}

function listOf(indices: number[], bad: (why: string) => never): GpuSelection {
  if (indices.length === 0) bad('no GPU given')
  for (const i of indices) if (!Number.isInteger(i) || i < 0) bad(`${i} is not a GPU index`)
  const dup = indices.find((i, k) => indices.indexOf(i) !== k)
  if (dup !== undefined) bad(`GPU ${dup} is given twice`)
  return { kind: 'list', indices }
}

/** One GPU as `nvidia-smi` reports it. Memory in MiB; `NaN` when the driver says `[N/A]`. */
export interface GpuInfo {
  index: number
  name: string
  memoryTotalMiB: number
  memoryUsedMiB: number
}

/** The `nvidia-smi` arguments of the inventory query. */
export const NVIDIA_SMI_ARGS = ['--query-gpu=index,name,memory.total,memory.used', '--format=csv,noheader,nounits'] as const

/**
 * Parse the output of `nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader,nounits`.
 * @example
 * parseNvidiaSmi('0, NVIDIA A100-SXM4-80GB, 81920, 4\n') // [{ index: 0, name: 'NVIDIA A100-SXM4-80GB', memoryTotalMiB: 81920, memoryUsedMiB: 4 }]
 */
export function parseNvidiaSmi(text: string): GpuInfo[] {
  const out: GpuInfo[] = []
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue
    const cells = line.split(',').map((c) => c.trim())
    if (cells.length < 4) throw new Error(`[prefpipe] cannot read this nvidia-smi line: ${JSON.stringify(line)}`)
    // A GPU name may itself hold a comma: index first, the two numbers last, the name in between.
    const index = Number(cells[0])
    if (!Number.isInteger(index)) throw new Error(`[prefpipe] cannot read this nvidia-smi line: ${JSON.stringify(line)}`)
    const num = (s: string | undefined) => (s !== undefined && /^\d+(\.\d+)?$/.test(s) ? Number(s) : Number.NaN)
    out.push({ index, name: cells.slice(1, -2).join(', '), memoryTotalMiB: num(cells[cells.length - 2]), memoryUsedMiB: num(cells[cells.length - 1]) })
  }
  return out
}

/**
 * The GPUs of this machine, from `nvidia-smi` (run without a shell, on `env.PATH`). Throws with a clear
 * message when `nvidia-smi` is missing or fails. Note: `nvidia-smi` lists every GPU whatever
 * `CUDA_VISIBLE_DEVICES` says, and its indices are the ones `CUDA_VISIBLE_DEVICES` takes (with the default
 * `CUDA_DEVICE_ORDER=FASTEST_FIRST` the two orders can differ on mixed machines; set `CUDA_DEVICE_ORDER=PCI_BUS_ID`).
 * @example
 * const gpus = await queryGpus() // [{ index: 0, name: 'NVIDIA H100 80GB HBM3', memoryTotalMiB: 81559, memoryUsedMiB: 0 }, ...]
 */
export async function queryGpus(opts: { env?: NodeJS.ProcessEnv; command?: string; timeoutMs?: number } = {}): Promise<GpuInfo[]> {
  const cmd = opts.command ?? 'nvidia-smi'
  const r = await execCapture(cmd, NVIDIA_SMI_ARGS, { env: opts.env ?? process.env, timeoutMs: opts.timeoutMs ?? 30_000 })
  if (r.error === 'ENOENT') throw new Error(`[prefpipe] ${cmd} not found on PATH: is the NVIDIA driver installed on this machine?`)
  if (r.code !== 0) {
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ') || r.error || `exit code ${r.code}`
    throw new Error(`[prefpipe] ${cmd} failed (${why}): the NVIDIA driver is not working on this machine`)
  }
  return parseNvidiaSmi(r.stdout)
}

/**
 * The GPU indices a selection means on a machine with `gpus` (or, without an inventory, what it can mean
 * alone: `all` then needs the inventory). Throws when there are too few GPUs or an index does not exist.
 * @example
 * resolveGpus({ kind: 'count', count: 8 }, inventory) // [0, 1, 2, 3, 4, 5, 6, 7]
 */
export function resolveGpus(selection: GpuSelection, gpus?: readonly GpuInfo[]): number[] {
  const have = gpus?.map((g) => g.index)
  const found = have ? `this machine has ${have.length} GPU${have.length === 1 ? '' : 's'}${have.length ? ` (${compactIndices(have)})` : ''}` : ''
  switch (selection.kind) {
    case 'all':
      if (!have) throw new Error('[prefpipe] --gpus all needs nvidia-smi to list the GPUs; give a count or a list instead')
      if (have.length === 0) throw new Error('[prefpipe] nvidia-smi lists no GPU')
      return [...have]
    case 'count':
      if (!have) return Array.from({ length: selection.count }, (_, i) => i)
      if (have.length < selection.count) throw new Error(`[prefpipe] ${selection.count} GPUs asked for, but ${found}`)
      return have.slice(0, selection.count)
    case 'list': {
      if (have) {
        const missing = selection.indices.filter((i) => !have.includes(i))
        if (missing.length) throw new Error(`[prefpipe] GPU${missing.length === 1 ? '' : 's'} ${missing.join(',')} asked for, but ${found}`)
      }
      return [...selection.indices]
    }
  }
}

/**
 * Indices as short text: `0-7`, `0,2,4`, `0-3,6`.
 * @example
 * compactIndices([0, 1, 2, 3, 6]) // '0-3,6'
 */
export function compactIndices(indices: readonly number[]): string {
  const parts: string[] = []
  for (let i = 0; i < indices.length; ) {
    let j = i
    while (j + 1 < indices.length && indices[j + 1] === indices[j]! + 1) j++
    parts.push(j - i >= 2 ? `${indices[i]}-${indices[j]}` : indices.slice(i, j + 1).join(','))
    i = j + 1
  }
  return parts.join(',')
}
