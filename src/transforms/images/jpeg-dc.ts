/**
 * A DC-only JPEG reader: the mean of every 8x8 block of a JPEG's first component, read from the DC
 * coefficients of the entropy-coded data. This is what libjpeg's 1/8-scale decode computes (before its
 * rounding and clamping), without an IDCT, colour conversion or sharp call, so that a perceptual hash of a JPEG
 * costs a fraction of a millisecond on the main thread. The AC coefficients are Huffman-decoded only to be
 * skipped.
 */
import { Buffer } from 'node:buffer'

/** Mean luma (0-255 scale) of each 8x8 block of a JPEG's first component, from its DC coefficients. */
export interface JpegBlockMeans {
  /** Image width (SOF). */
  width: number
  /** Image height (SOF). */
  height: number
  /** Blocks across that cover the first component: `ceil(ceil(width * H0 / Hmax) / 8)`. */
  cols: number
  /** Blocks down that cover the first component: `ceil(ceil(height * V0 / Vmax) / 8)`. */
  rows: number
  /** `cols * rows` block means, row-major: `DC * Q0 / 8 + 128` (Q0: the DC entry of the component's quantisation table). */
  means: Float64Array
}

/** Thrown when the entropy-coded data is corrupt or truncated (the caller treats it as a decode failure). */
export class JpegDataError extends Error {
  override name = 'JpegDataError'
}

/** Bits of the Huffman lookup tables: codes up to this long (most of them) take one table read. */
const FAST_BITS = 10
const FAST_SHIFT = 32 - FAST_BITS
const FAST_SIZE = 1 << FAST_BITS
/** Bits of the AC pair tables: two AC symbols (codes and extra bits) fitting in this many bits take one read. */
const PAIR_BITS = 12
const PAIR_SHIFT = 32 - PAIR_BITS
const PAIR_SIZE = 1 << PAIR_BITS
/** Below this coefficient index AC symbols are read in pairs: the first of a pair (run <= 15) cannot end the block. */
const PAIR_LIMIT = 48
/** Coefficient-index advance stored for an end-of-block symbol: ends the block, and tells it from a run past 63. */
const EOB = 128
/** Table slots: DC tables 0-3 in slots 0-3, AC tables 0-3 in slots 4-7. */
const SLOTS = 8

// Huffman tables, shared by all calls (the reader is synchronous): built at DHT, so redefinitions between
// segments replace them and the scan uses the ones in force at SOS.
/**
 * Per slot, the entry for every FAST_BITS-bit prefix; 0 when the code is longer (or the symbol is out of range):
 * DC: `codeLength | size << 5`; AC: `(codeLength + size) | advance << 8`, advance = run + 1, 16 for ZRL, EOB.
 */
const fastTable = new Uint16Array(SLOTS * FAST_SIZE)
/**
 * Per AC table id, the entry for every PAIR_BITS-bit prefix: as in `fastTable`, for two symbols when both fit
 * (bits and advances added up), else for one. Built at SOS for the tables the scan uses.
 */
const pairTable = new Uint16Array(4 * PAIR_SIZE)
/** Per slot and code length 1-16: the largest code of that length, -1 if none. */
const maxCode = new Int32Array(SLOTS * 17)
/** Per slot and code length: index in `huffVals` of the symbol of code `c` is `valOffset + c`. */
const valOffset = new Int32Array(SLOTS * 17)
const huffVals = new Uint8Array(SLOTS * 256)

/**
 * Zero bytes after the de-stuffed scan data: more than one MCU can consume (10 blocks of at most 27 bits of DC
 * and 64 AC symbols of 26 bits: 2,114 bytes) plus a 4-byte peek, so the reader never runs off the copy before
 * the truncation check after each MCU stops it. Zeros are also what libjpeg feeds in past the end of the data.
 */
const TAIL = 4096
/** Entropy-coded data larger than this gives `null`: bit positions must stay below 2^31. */
const MAX_SCAN_BYTES = 1 << 28
// The scan's entropy-coded data without byte stuffing and restart markers, reused across calls (it keeps the
// size of the largest scan seen), and a view to read it 32 bits at a time.
let scan = new Uint8Array(1 << 16)
let scanView = new DataView(scan.buffer)

/**
 * Read the DC coefficients of a JPEG's first component and return each 8x8 block's mean.
 *
 * `null` when the file is a JPEG this reader does not handle (the caller then decodes with sharp):
 * anything other than SOF0/SOF1 (baseline / extended sequential Huffman), precision other than 8 bits,
 * component count other than 1 or 3, sampling factors outside 1..2, a scan that is not the single interleaved
 * scan holding all components (non-interleaved multi-scan files), missing SOI, or no SOF before SOS.
 * Also `null`, leaving the verdict to sharp: marker sequences libjpeg refuses or warns about (a second SOF or
 * SOI, EOI or DNL before the scan, unknown markers, stray bytes between segments), and scans over 256 MB.
 *
 * For a 3-component file the first component is luma: RGB-coded files (an Adobe segment with transform 0, or
 * component ids R, G, B) give `null`.
 *
 * `into`, when given and large enough, receives the means (then `means` is a view of it, valid until it is
 * reused): a caller hashing thousands of images allocates nothing per image.
 *
 * @throws {JpegDataError} for data ending before every MCU was decoded, an invalid Huffman code, a Huffman/quant
 * table referenced but never defined (or malformed), a marker segment running past the end, a DC/AC value out
 * of range (DC size above 11 bits, AC size above 10 bits, or a run past coefficient 63), a wrong restart marker.
 *
 * @example
 * const blocks = jpegBlockMeans(bytes)
 * if (blocks) console.log(blocks.cols, blocks.rows, blocks.means[0]) // the top-left block's mean luma
 */
export function jpegBlockMeans(bytes: Uint8Array, into?: Float64Array): JpegBlockMeans | null {
  const n = bytes.length
  if (n < 2 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null
  const huffDefined = new Uint8Array(SLOTS)
  const quantDc = new Int32Array(4)
  const quantDefined = new Uint8Array(4)
  let frame: Frame | null = null
  let restartInterval = 0
  // An Adobe APP14 segment with transform 0 says the three components are R, G, B (not Y, Cb, Cr).
  let adobeRgb = false
  let i = 2
  for (;;) {
    if (i + 2 > n) throw new JpegDataError('JPEG data ends before the scan')
    if (bytes[i] !== 0xff) return null
    let marker = bytes[i + 1]!
    // Fill bytes (0xFF 0xFF ...) may precede a marker.
    while (marker === 0xff) {
      i++
      if (i + 2 > n) throw new JpegDataError('JPEG data ends before the scan')
      marker = bytes[i + 1]!
    }
    i += 2
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue // RSTn, TEM: no segment
    if (i + 2 > n) throw new JpegDataError('JPEG marker segment runs past the end')
    const len = (bytes[i]! << 8) | bytes[i + 1]!
    const seg = i + 2
    const end = i + len
    if (len < 2 || end > n) throw new JpegDataError('JPEG marker segment runs past the end')
    if (marker === 0xc0 || marker === 0xc1) {
      if (frame) return null
      if (len < 8) throw new JpegDataError('JPEG SOF segment too short')
      const nf = bytes[seg + 5]!
      const width = (bytes[seg + 3]! << 8) | bytes[seg + 4]!
      const height = (bytes[seg + 1]! << 8) | bytes[seg + 2]!
      if (bytes[seg] !== 8 || (nf !== 1 && nf !== 3) || width === 0 || height === 0) return null
      if (len !== 8 + 3 * nf) throw new JpegDataError('JPEG SOF segment has a wrong length')
      const components: FrameComponent[] = []
      for (let c = 0; c < nf; c++) {
        const at = seg + 6 + 3 * c
        const h = bytes[at + 1]! >> 4
        const v = bytes[at + 1]! & 15
        const tq = bytes[at + 2]!
        if (h < 1 || h > 2 || v < 1 || v > 2) return null
        if (tq > 3) throw new JpegDataError(`JPEG SOF references quantisation table ${tq}`)
        components.push({ id: bytes[at]!, h, v, tq })
      }
      frame = { width, height, components }
    } else if (marker === 0xc4) {
      readHuffmanTables(bytes, seg, end, huffDefined)
    } else if (marker === 0xdb) {
      for (let p = seg; p < end; ) {
        const pq = bytes[p]! >> 4
        const tq = bytes[p]! & 15
        if (pq > 1 || tq > 3) throw new JpegDataError('JPEG DQT has a bad precision or table id')
        if (p + 1 + (pq ? 128 : 64) > end) throw new JpegDataError('JPEG DQT table runs past its segment')
        quantDc[tq] = pq ? (bytes[p + 1]! << 8) | bytes[p + 2]! : bytes[p + 1]!
        quantDefined[tq] = 1
        p += 1 + (pq ? 128 : 64)
      }
    } else if (marker === 0xdd) {
      if (len !== 4) throw new JpegDataError('JPEG DRI segment has a wrong length')
      restartInterval = (bytes[seg]! << 8) | bytes[seg + 1]!
    } else if (marker === 0xda) {
      if (!frame) return null
      // RGB-coded files (Adobe transform 0, or component ids 'R' 'G' 'B' as libjpeg reads them): the first
      // component is red, not luma, so sharp decodes them instead.
      const ids = frame.components.map((c) => c.id).join()
      if (frame.components.length === 3 && (adobeRgb || ids === '82,71,66')) return null
      if (len < 3) throw new JpegDataError('JPEG SOS segment too short')
      const ns = bytes[seg]!
      if (ns !== frame.components.length) return null
      if (len !== 6 + 2 * ns) throw new JpegDataError('JPEG SOS segment has a wrong length')
      // For each scan component, in scan order: its frame index and table slots.
      const order: number[] = []
      const dcSlots: number[] = []
      const acSlots: number[] = []
      for (let j = 0; j < ns; j++) {
        const id = bytes[seg + 1 + 2 * j]!
        const c = frame.components.findIndex((fc, k) => fc.id === id && !order.includes(k))
        if (c < 0) throw new JpegDataError(`JPEG scan references an unknown component ${id}`)
        const td = bytes[seg + 2 + 2 * j]! >> 4
        const ta = bytes[seg + 2 + 2 * j]! & 15
        if (td > 3 || ta > 3 || !huffDefined[td] || !huffDefined[4 + ta]) throw new JpegDataError('JPEG scan references an undefined Huffman table')
        order.push(c)
        dcSlots.push(td)
        acSlots.push(4 + ta)
      }
      const tq = frame.components[0]!.tq
      if (!quantDefined[tq]) throw new JpegDataError('JPEG frame references an undefined quantisation table')
      return decodeScan(bytes, end, frame, order, dcSlots, acSlots, restartInterval, quantDc[tq]! / 8, into)
    } else if (marker === 0xee) {
      const adobe = len >= 14 && String.fromCharCode(...bytes.subarray(seg, seg + 5)) === 'Adobe'
      adobeRgb = adobe && bytes[seg + 11] === 0
    } else if (marker === 0xcc || (marker >= 0xe0 && marker <= 0xef) || marker === 0xfe) {
      // DAC (arithmetic coding only, whose frames give null), APPn, COM: skipped.
    } else {
      return null // other SOFn, JPG, DNL, SOI, EOI, reserved or unknown markers: sharp decides
    }
    i = end
  }
}

interface FrameComponent {
  id: number
  h: number
  v: number
  tq: number
}

interface Frame {
  width: number
  height: number
  components: FrameComponent[]
}

/** Parse a DHT segment (one or more tables) into the slots' lookup tables. */
function readHuffmanTables(bytes: Uint8Array, start: number, end: number, defined: Uint8Array): void {
  for (let p = start; p < end; ) {
    const tc = bytes[p]! >> 4
    const th = bytes[p]! & 15
    if (tc > 1 || th > 3) throw new JpegDataError('JPEG DHT has a bad table class or id')
    if (p + 17 > end) throw new JpegDataError('JPEG DHT table runs past its segment')
    let total = 0
    for (let k = 1; k <= 16; k++) total += bytes[p + k]!
    if (total > 256 || p + 17 + total > end) throw new JpegDataError('JPEG DHT table runs past its segment')
    const slot = tc * 4 + th
    buildTable(bytes, p + 1, p + 17, slot, tc === 0)
    defined[slot] = 1
    p += 17 + total
  }
}

/** Build the canonical Huffman code of one table (counts per length at `countsAt`, symbols at `valsAt`) into `slot`. */
function buildTable(bytes: Uint8Array, countsAt: number, valsAt: number, slot: number, isDc: boolean): void {
  const fastBase = slot * FAST_SIZE
  fastTable.fill(0, fastBase, fastBase + FAST_SIZE)
  let code = 0
  let k = 0
  for (let len = 1; len <= 16; len++) {
    const count = bytes[countsAt + len - 1]!
    valOffset[slot * 17 + len] = k - code
    for (let c = 0; c < count; c++, code++, k++) {
      // As libjpeg: the codes of each length must fit in it, and the all-ones code is not allowed.
      if (code + 1 >= 1 << len) throw new JpegDataError('JPEG Huffman table is over-subscribed')
      const sym = bytes[valsAt + k]!
      huffVals[slot * 256 + k] = sym
      if (len <= FAST_BITS) {
        const entry = isDc ? dcEntry(len, sym) : acEntry(len, sym)
        const first = fastBase + (code << (FAST_BITS - len))
        fastTable.fill(entry, first, first + (1 << (FAST_BITS - len)))
      }
    }
    maxCode[slot * 17 + len] = count ? code - 1 : -1
    code <<= 1
  }
}

/** The fast-table entry of a DC symbol (its size), or 0 (slow path, which throws) when out of range. */
function dcEntry(codeLength: number, size: number): number {
  return size > 11 ? 0 : codeLength | (size << 5)
}

/** The fast-table entry of an AC symbol (run << 4 | size): bits to skip and coefficient-index advance. */
function acEntry(codeLength: number, sym: number): number {
  const run = sym >> 4
  const size = sym & 15
  if (size > 10) return 0
  // As libjpeg, a size-0 symbol other than ZRL (0xF0) ends the block.
  const advance = size ? run + 1 : run === 15 ? 16 : EOB
  return (codeLength + size) | (advance << 8)
}

/**
 * Decode the interleaved scan whose data starts at `start`: every MCU in order, keeping the DC values of the
 * first component's blocks that cover the image.
 */
function decodeScan(
  bytes: Uint8Array,
  start: number,
  frame: Frame,
  order: number[],
  dcSlots: number[],
  acSlots: number[],
  restartInterval: number,
  scale: number,
  into: Float64Array | undefined,
): JpegBlockMeans | null {
  const { width, height, components } = frame
  const c0 = components[0]!
  let hMax = 1
  let vMax = 1
  for (const c of components) {
    hMax = Math.max(hMax, c.h)
    vMax = Math.max(vMax, c.v)
  }
  const cols = Math.ceil(Math.ceil((width * c0.h) / hMax) / 8)
  const rows = Math.ceil(Math.ceil((height * c0.v) / vMax) / 8)
  // The MCU: one block for a single-component (non-interleaved) scan, whatever its sampling factors;
  // otherwise H x V blocks of each component, in scan order.
  const single = components.length === 1
  const h0 = single ? 1 : c0.h
  const v0 = single ? 1 : c0.v
  const mcusX = single ? cols : Math.ceil(width / (8 * hMax))
  const mcusY = single ? rows : Math.ceil(height / (8 * vMax))
  const dcBase: number[] = []
  const acBase: number[] = []
  const pairBase: number[] = []
  const yDx: number[] = [] // column in the MCU of a first-component block; -1 for the other components
  const yDy: number[] = []
  for (let j = 0; j < order.length; j++) {
    const c = order[j]!
    const bh = single ? 1 : components[c]!.h
    const bv = single ? 1 : components[c]!.v
    for (let y = 0; y < bv; y++) {
      for (let x = 0; x < bh; x++) {
        dcBase.push(dcSlots[j]! * FAST_SIZE)
        acBase.push(acSlots[j]! * FAST_SIZE)
        pairBase.push((acSlots[j]! - 4) * PAIR_SIZE)
        yDx.push(c === 0 ? x : -1)
        yDy.push(y)
      }
    }
  }
  const nb = dcBase.length
  if (bytes.length - start > MAX_SCAN_BYTES) return null
  // Every block takes at least two bits (a DC and an AC code): refuse early a frame the data cannot hold,
  // before allocating for it.
  if (mcusX * mcusY * nb > (bytes.length - start) * 4) throw new JpegDataError('JPEG data ends before the last MCU')
  for (const slot of new Set(acSlots)) buildPairs(slot)
  const restarts: number[] = []
  const dataLength = destuff(bytes, start, restartInterval !== 0, restarts)
  const means = into && into.length >= cols * rows ? into.subarray(0, cols * rows).fill(0) : new Float64Array(cols * rows)
  const fast = fastTable
  const pairs = pairTable
  const view = scanView

  // Bits are read at `pos` (a bit index into `scan`) 32 at a time; the first 25 are always valid.
  let pos = 0
  let limit = (restarts.length ? restarts[0]! >> 3 : dataLength) * 8 // end of the interval's data, in bits
  let pred = 0 // the first component's DC predictor; the others' DC values are only skipped
  let toRestart = restartInterval
  let interval = 0
  for (let my = 0; my < mcusY; my++) {
    for (let mx = 0; mx < mcusX; mx++) {
      if (restartInterval !== 0) {
        if (toRestart === 0) {
          if (interval >= restarts.length) throw new JpegDataError('JPEG data ends before the last MCU')
          if ((restarts[interval]! & 7) !== (interval & 7)) throw new JpegDataError(`JPEG data has RST${restarts[interval]! & 7} where RST${interval & 7} was expected`)
          pos = (restarts[interval]! >> 3) * 8
          interval++
          limit = (interval < restarts.length ? restarts[interval]! >> 3 : dataLength) * 8
          toRestart = restartInterval
          pred = 0
        }
        toRestart--
      }
      for (let b = 0; b < nb; b++) {
        // DC: the size category, then that many bits of difference.
        let bits = view.getUint32(pos >>> 3) << (pos & 7)
        let e = fast[dcBase[b]! + (bits >>> FAST_SHIFT)]!
        if (e === 0) e = slowDcEntry(bits >>> 16, dcBase[b]! / FAST_SIZE)
        pos += e & 31
        const size = e >> 5
        const dx = yDx[b]!
        if (dx >= 0) {
          if (size !== 0) {
            bits = view.getUint32(pos >>> 3) << (pos & 7)
            // The top bit set means a positive difference; otherwise it is the one's complement of -diff.
            let diff = bits >>> (32 - size)
            if (bits >= 0) diff -= (1 << size) - 1
            pred += diff
          }
          const row = my * v0 + yDy[b]!
          const col = mx * h0 + dx
          if (row < rows && col < cols) means[row * cols + col] = pred * scale + 128
        }
        pos += size

        // AC: decoded only to be skipped.
        const acAt = acBase[b]!
        const pairAt = pairBase[b]!
        let k = 1
        while (k < PAIR_LIMIT) {
          bits = view.getUint32(pos >>> 3) << (pos & 7)
          e = pairs[pairAt + (bits >>> PAIR_SHIFT)]!
          if (e === 0) e = slowAcEntry(bits >>> 16, acAt / FAST_SIZE)
          pos += e & 31
          k += e >> 8
        }
        while (k < 64) {
          bits = view.getUint32(pos >>> 3) << (pos & 7)
          e = fast[acAt + (bits >>> FAST_SHIFT)]!
          if (e === 0) e = slowAcEntry(bits >>> 16, acAt / FAST_SIZE)
          pos += e & 31
          k += e >> 8
        }
        if (k > 64 && k < EOB) throw new JpegDataError('JPEG AC run past coefficient 63')
      }
      if (pos > limit) throw new JpegDataError('JPEG data ends before the last MCU')
    }
  }
  return { width, height, cols, rows, means }
}

/**
 * Copy the entropy-coded data starting at `start` into `scan` without byte stuffing, up to the first marker
 * other than a restart marker (or any marker, if `restarts` is false) or the end of the data. Each restart
 * marker RSTn is recorded in `markers` as `offset << 3 | n`, its offset being where the next interval's data
 * starts in `scan`. Returns the length of the data.
 */
function destuff(bytes: Uint8Array, start: number, restarts: boolean, markers: number[]): number {
  const n = bytes.length
  if (scan.length < n - start + TAIL) {
    scan = new Uint8Array(Math.max(n - start + TAIL, scan.length * 2))
    scanView = new DataView(scan.buffer)
  }
  // One native copy, then the runs between 0xFF bytes are moved down in place. Buffer's indexOf (memchr) is
  // several times faster than Uint8Array's.
  const search = Buffer.from(bytes.buffer, bytes.byteOffset, n)
  scan.set(bytes.subarray(start), 0)
  let out = 0
  let p = start
  for (;;) {
    const ff = search.indexOf(0xff, p)
    const stop = ff < 0 ? n : ff
    if (out !== p - start) scan.copyWithin(out, p - start, stop - start)
    out += stop - p
    if (ff < 0) break
    // Fill bytes (0xFF 0xFF ...) may precede a marker.
    let m = ff + 1
    while (m < n && bytes[m] === 0xff) m++
    if (m >= n) break
    const marker = bytes[m]!
    if (marker === 0) scan[out++] = 0xff
    else if (restarts && marker >= 0xd0 && marker <= 0xd7) markers.push((out << 3) | (marker & 7))
    else break
    p = m + 1
  }
  scan.fill(0, out, out + TAIL)
  return out
}

/**
 * Fill the pair table of an AC slot from its fast table: for each prefix, the first symbol's entry, plus the
 * second's when the first neither ends the block nor leaves too few bits to know the second.
 */
function buildPairs(slot: number): void {
  const single = slot * FAST_SIZE
  const base = (slot - 4) * PAIR_SIZE
  const drop = PAIR_BITS - FAST_BITS
  for (let v = 0; v < PAIR_SIZE; v++) {
    const first = fastTable[single + (v >> drop)]!
    const length = first & 31
    let entry = first
    if (first !== 0 && first >> 8 !== EOB && length < PAIR_BITS) {
      // The rest of the prefix, padded with zeros: the second entry holds if its bits are all within the prefix.
      const second = fastTable[single + (((v << length) & (PAIR_SIZE - 1)) >> drop)]!
      if (second !== 0 && length + (second & 31) <= PAIR_BITS) entry = (length + (second & 31)) | (((first >> 8) + (second >> 8)) << 8)
    }
    pairTable[base + v] = entry
  }
}

/** The fast-table entry of a DC symbol whose code is not in the fast table, from the next 16 bits. */
function slowDcEntry(peek: number, slot: number): number {
  const r = slowSymbol(peek, slot)
  const entry = dcEntry(r >> 8, r & 255)
  if (entry === 0) throw new JpegDataError('JPEG DC difference out of range')
  return entry
}

/** The fast-table entry of an AC symbol whose code is not in the fast table, from the next 16 bits. */
function slowAcEntry(peek: number, slot: number): number {
  const r = slowSymbol(peek, slot)
  const entry = acEntry(r >> 8, r & 255)
  if (entry === 0) throw new JpegDataError('JPEG AC coefficient out of range')
  return entry
}

/** Decode a symbol from the next 16 bits: `codeLength << 8 | symbol`. */
function slowSymbol(peek: number, slot: number): number {
  for (let len = 1; len <= 16; len++) {
    const code = peek >>> (16 - len)
    if (code <= maxCode[slot * 17 + len]!) return (len << 8) | huffVals[slot * 256 + valOffset[slot * 17 + len]! + code]!
  }
  throw new JpegDataError('JPEG data holds an invalid Huffman code')
}
