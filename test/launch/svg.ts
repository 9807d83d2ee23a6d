/**
 * Checks for the SVG files a launch writes: a tiny XML well-formedness check (tags balance, attributes are
 * quoted, only the five XML entities and numeric references) and the points of a curve's path.
 */
import { expect } from 'vitest'

const NAME = '[A-Za-z_][\\w:.-]*'
const ATTR = new RegExp(`\\s+${NAME}\\s*=\\s*("[^"<]*"|'[^'<]*')`, 'y')

/** Throw unless `xml` is one well-formed element tree whose root is `<svg xmlns="http://www.w3.org/2000/svg" ...>`. */
export function checkXml(xml: string): string {
  const stack: string[] = []
  let root: string | undefined
  let i = 0
  const text = xml.replace(/^<\?xml[^>]*\?>\s*/, '')
  while (i < text.length) {
    const lt = text.indexOf('<', i)
    const chunk = lt === -1 ? text.slice(i) : text.slice(i, lt)
    if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(chunk)) throw new Error(`bad entity in text: ${chunk.slice(0, 40)}`)
    if (chunk.trim() && stack.length === 0) throw new Error(`text outside the root element: ${chunk.slice(0, 40)}`)
    if (lt === -1) break
    if (text.startsWith('<!--', lt)) {
      const end = text.indexOf('-->', lt)
      if (end === -1) throw new Error('unclosed comment')
      i = end + 3
      continue
    }
    const close = new RegExp(`</(${NAME})\\s*>`, 'y')
    close.lastIndex = lt
    const c = close.exec(text)
    if (c) {
      const open = stack.pop()
      if (open !== c[1]) throw new Error(`</${c[1]}> closes <${open}>`)
      i = close.lastIndex
      continue
    }
    const openRe = new RegExp(`<(${NAME})`, 'y')
    openRe.lastIndex = lt
    const o = openRe.exec(text)
    if (!o) throw new Error(`bad markup at ${text.slice(lt, lt + 40)}`)
    let j = openRe.lastIndex
    const seen = new Set<string>()
    for (;;) {
      ATTR.lastIndex = j
      const a = ATTR.exec(text)
      if (!a) break
      const name = a[0].trim().split(/\s*=/)[0]!
      if (seen.has(name)) throw new Error(`attribute ${name} twice on <${o[1]}>`)
      seen.add(name)
      if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(a[1]!)) throw new Error(`bad entity in attribute ${name}`)
      j = ATTR.lastIndex
    }
    const end = /\s*(\/?)>/y
    end.lastIndex = j
    const e = end.exec(text)
    if (!e) throw new Error(`bad tag <${o[1]}: ${text.slice(j, j + 40)}`)
    if (stack.length === 0) {
      if (root) throw new Error('two root elements')
      root = text.slice(lt, end.lastIndex)
    }
    if (!e[1]) stack.push(o[1]!)
    else if (stack.length === 0) throw new Error('self-closed root')
    i = end.lastIndex
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`)
  if (!root) throw new Error('no element')
  return root
}

/** Check an SVG document: well-formed, `<svg>` root with the SVG namespace, a title, no script or external reference. */
export function checkSvg(svg: string): void {
  const root = checkXml(svg)
  expect(root).toMatch(/^<svg\s/)
  expect(root).toContain('xmlns="http://www.w3.org/2000/svg"')
  expect(root).toMatch(/viewBox="0 0 \d+ \d+"/)
  expect(svg).toMatch(/<title>[^<]+<\/title>/)
  expect(svg).not.toMatch(/<script|href=|url\(|@import/i)
}

/** The points of the `<path data-series="series" data-kind="kind">` of an SVG (one per M/L command). */
export function pathPoints(svg: string, series: string, kind: string): [number, number][] {
  const re = new RegExp(`<path data-series="${series.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" data-kind="${kind}" d="([^"]*)"`)
  const d = re.exec(svg)?.[1]
  if (d === undefined) return []
  const cmds = d.match(/[ML][^ML]*/g) ?? []
  return cmds.map((c) => {
    const [x, y] = c.slice(1).split(',').map(Number)
    expect(Number.isFinite(x) && Number.isFinite(y)).toBe(true)
    return [x!, y!]
  })
}
