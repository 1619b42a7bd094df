// The props the fixture server sends (server.ts) and the fixture apps render.
export interface Card {
  id: number;
  title: string;
}
export interface BoardProps {
  board: { id: number; name: string };
  cards: Card[];
  mine: { id: number; body: string }[];
  viewer: string | null;
  latest: string | null;
  banner?: string;
  stats?: { cards: number };
}
export interface OtherProps {
  count: number;
}
